-- Snowflake account set-up for data-pipelines: the SVC_DLT service user that dlt loads as, its role,
-- warehouse and database, and read access to everything it loads for the transformer (dbt) role.
-- Owner: data platform team (#data-platform). Walk-through: docs/snowflake.md.
--
-- Who runs it: an administrator who holds SYSADMIN and SECURITYADMIN (Snowflake's recommended split:
-- SYSADMIN creates and owns warehouses and databases, SECURITYADMIN - which inherits USERADMIN and holds
-- MANAGE GRANTS - owns users and roles and grants privileges). ACCOUNTADMIN is not needed, and nothing
-- here runs as it; nothing at run time (dlt, Prefect) ever uses more than the loader role.
--
-- Idempotent: every object is CREATE ... IF NOT EXISTS and GRANT is repeatable, so run the whole file
-- again after changing it. It never touches an existing user's keys (rotation: end of this file).
--
-- Before the first run, replace <SVC_DLT public key> below with the body of the public key (the text
-- between the BEGIN/END lines, on one line; docs/snowflake.md shows the openssl commands).
--
-- What dlt does with these privileges (dlt 1.31, destination "snowflake", every pipeline loading there):
--   * CREATE SCHEMA <DATASET> and <DATASET>_STAGING (staging: merge, and replace with
--     replace_strategy = "insert-from-staging"), then CREATE/ALTER TABLE in them. The loader role owns
--     the schemas and tables it creates, and ownership covers everything else dlt does there:
--     PUT to each table's own stage (only the table owner may), COPY INTO, REMOVE of staged files,
--     INSERT, DELETE, MERGE (upsert), UPDATE (scd2), TRUNCATE of staging tables, DROP TABLE.
--   * Reads INFORMATION_SCHEMA to compare its schema with the tables (USAGE on the database suffices).
--   * ALTER SESSION SET QUERY_TAG (no privilege needed).
-- So the loader role needs exactly: USAGE on the warehouse, USAGE and CREATE SCHEMA on the database.

-- Names. Change them here only; .dlt/secrets.toml.example and docs/snowflake.md use the same ones, and
-- tests/tools/test_snowflake_setup.py checks that they agree.
SET database_name = 'RAW';            -- one schema per pipeline: RAW.CURRENCIES, RAW.HUBSPOT, ...
SET warehouse_name = 'LOADING';       -- the loader's own warehouse: its credits show on their own line
SET loader_role = 'SVC_DLT_ROLE';     -- [destination.snowflake.credentials] role
SET loader_user = 'SVC_DLT';          -- [destination.snowflake.credentials] username
SET reader_role = 'TRANSFORMER';      -- dbt (and anyone reading the raw layer) reads through this role


-- 1. Warehouse and database: SYSADMIN creates and owns them ----------------------------------------
USE ROLE SYSADMIN;

CREATE WAREHOUSE IF NOT EXISTS IDENTIFIER($warehouse_name)
    WAREHOUSE_SIZE = XSMALL           -- loads are PUT/COPY of parquet: I/O bound, the smallest size does
    AUTO_SUSPEND = 60                 -- seconds idle before it stops billing
    AUTO_RESUME = TRUE                -- the first query resumes it, so USAGE is enough (no OPERATE)
    INITIALLY_SUSPENDED = TRUE
    COMMENT = 'dlt loads (data-pipelines, user SVC_DLT)';

CREATE DATABASE IF NOT EXISTS IDENTIFIER($database_name)
    COMMENT = 'Raw layer: one schema per dlt pipeline (data-pipelines)';


-- 2. Roles and the service user: SECURITYADMIN owns them and grants everything -------------------
USE ROLE SECURITYADMIN;

CREATE ROLE IF NOT EXISTS IDENTIFIER($loader_role)
    COMMENT = 'dlt loads into the raw database (data-pipelines)';
CREATE ROLE IF NOT EXISTS IDENTIFIER($reader_role)
    COMMENT = 'Reads every raw schema and table (dbt)';

-- Custom roles roll up to SYSADMIN, so administrators can manage what the roles own (Snowflake's
-- recommended role hierarchy); neither role gains anything from this.
GRANT ROLE IDENTIFIER($loader_role) TO ROLE SYSADMIN;
GRANT ROLE IDENTIFIER($reader_role) TO ROLE SYSADMIN;

-- TYPE = SERVICE: key-pair (or OAuth) logins only - no password, no SSO, no MFA prompts.
-- RSA_PUBLIC_KEY is set when the user is created and never again by this file (re-runs keep the keys).
CREATE USER IF NOT EXISTS IDENTIFIER($loader_user)
    TYPE = SERVICE
    RSA_PUBLIC_KEY = '<SVC_DLT public key>'
    COMMENT = 'dlt loads (data-pipelines); key pair in the vault: dlt/destination/snowflake/credentials';

-- Session defaults, kept in step on every run. No secondary roles: a session holds the loader role and
-- nothing else, whatever else is ever granted to the user.
ALTER USER IDENTIFIER($loader_user) SET
    DEFAULT_ROLE = $loader_role
    DEFAULT_WAREHOUSE = $warehouse_name
    DEFAULT_NAMESPACE = $database_name
    DEFAULT_SECONDARY_ROLES = ();

-- The user loads as the loader role.
GRANT ROLE IDENTIFIER($loader_role) TO USER IDENTIFIER($loader_user);

-- Run queries on the warehouse (and resume it: AUTO_RESUME = TRUE).
GRANT USAGE ON WAREHOUSE IDENTIFIER($warehouse_name) TO ROLE IDENTIFIER($loader_role);
-- See the database and read its INFORMATION_SCHEMA.
GRANT USAGE ON DATABASE IDENTIFIER($database_name) TO ROLE IDENTIFIER($loader_role);
-- Create each pipeline's dataset schema and its <DATASET>_STAGING schema; the role owns what it creates.
GRANT CREATE SCHEMA ON DATABASE IDENTIFIER($database_name) TO ROLE IDENTIFIER($loader_role);

-- The reader role: every schema and table in the raw database, now and in future, read-only.
-- Future grants at database level apply to schemas and tables whoever creates them (the loader, or
-- SYSADMIN for the Snowpipe schema in exchange_rates.sql). A schema-level future grant, if anyone ever
-- adds one, takes precedence inside that schema: do not add one without repeating these.
-- See the database.
GRANT USAGE ON DATABASE IDENTIFIER($database_name) TO ROLE IDENTIFIER($reader_role);
-- See the schemas that exist today, and every schema created from now on.
GRANT USAGE ON ALL SCHEMAS IN DATABASE IDENTIFIER($database_name) TO ROLE IDENTIFIER($reader_role);
GRANT USAGE ON FUTURE SCHEMAS IN DATABASE IDENTIFIER($database_name) TO ROLE IDENTIFIER($reader_role);
-- Read the tables that exist today, and every table created from now on (new pipelines, new nested
-- tables, tables dlt re-creates) - no manual grants after a load.
GRANT SELECT ON ALL TABLES IN DATABASE IDENTIFIER($database_name) TO ROLE IDENTIFIER($reader_role);
GRANT SELECT ON FUTURE TABLES IN DATABASE IDENTIFIER($database_name) TO ROLE IDENTIFIER($reader_role);
-- The reader's own warehouse belongs to the dbt set-up, not here.


-- Key rotation (run by hand as SECURITYADMIN; docs/snowflake.md, "Rotating the key"):
--   ALTER USER SVC_DLT SET RSA_PUBLIC_KEY_2 = '<new public key>';   -- both keys now work
--   -- push the new private key to the vault, let the next runs succeed, then retire the old key:
--   ALTER USER SVC_DLT UNSET RSA_PUBLIC_KEY;
-- The next rotation sets RSA_PUBLIC_KEY again and unsets RSA_PUBLIC_KEY_2, and so on.
-- DESC USER SVC_DLT shows RSA_PUBLIC_KEY_FP / RSA_PUBLIC_KEY_2_FP, the fingerprints of both slots.
