-- Snowpipe for exchange_rates: parquet files written by pipelines/exchange_rates.py to S3 are ingested
-- into RAW.EXCHANGE_RATES.RATES as they land. Owner: data platform team (#data-platform).
--
-- The pipeline writes (dlt filesystem destination, [destination.filesystem] in .dlt/config.toml):
--   s3://<bucket>/exchange-rates/rates/<YYYY>/<MM>/<DD>/<load_id>.<file_id>.parquet
-- with the columns rate_date (DATE), base_currency, quote_currency (STRING), rate (DOUBLE),
-- provider (STRING), loaded_at (TIMESTAMP, microseconds, UTC) and _dlt_load_id (STRING).
-- dlt's own bookkeeping (exchange-rates/_dlt_loads/, _dlt_pipeline_state/, _dlt_version/) sits beside
-- rates/ and is not ingested. Every file name is unique (load id + file id), so Snowpipe loads each once;
-- the pipeline never writes a (date, base, quote) twice. Known limit: a job repeated after a kill at the
-- wrong instant rewrites the same object (docs/reliability.md).
--
-- Deployment order (see docs/exchange_rates.md):
--   0. snowflake/setup.sql: the RAW database (SYSADMIN) and the roles (docs/snowflake.md);
--   1. storage integration S3_RAW_LANDING and its IAM role (once per bucket, ACCOUNTADMIN), then
--      GRANT USAGE ON INTEGRATION S3_RAW_LANDING TO ROLE SYSADMIN;
--   2. this file (schema, table, file format, stage, pipe), run as SYSADMIN, which owns RAW; the
--      TRANSFORMER role reads RATES through setup.sql's future grants, and SVC_DLT never touches it;
--   3. S3 event notification: bucket -> the pipe's notification_channel (SHOW PIPES), for
--      s3:ObjectCreated:* with prefix exchange-rates/rates/ and suffix .parquet;
--   4. ALTER PIPE RAW.EXCHANGE_RATES.RATES_PIPE REFRESH; picks up files that landed before step 3;
--   5. deploy the Prefect flows (exchange-rates-daily, exchange-rates-backfill).
-- Replace data-pipelines-raw-landing with the bucket in [destination.filesystem] bucket_url.

CREATE SCHEMA IF NOT EXISTS RAW.EXCHANGE_RATES;

CREATE TABLE IF NOT EXISTS RAW.EXCHANGE_RATES.RATES (
    RATE_DATE       DATE          NOT NULL,
    BASE_CURRENCY   VARCHAR(3)    NOT NULL,
    QUOTE_CURRENCY  VARCHAR(3)    NOT NULL,
    RATE            FLOAT         NOT NULL,  -- IEEE double, as published (see sources/exchange_rates)
    PROVIDER        VARCHAR       NOT NULL,
    LOADED_AT       TIMESTAMP_TZ  NOT NULL,
    _DLT_LOAD_ID    VARCHAR       NOT NULL,  -- joins exchange-rates/_dlt_loads in S3
    _SOURCE_FILE    VARCHAR       NOT NULL,  -- the S3 object the row came from
    _INGESTED_AT    TIMESTAMP_LTZ DEFAULT CURRENT_TIMESTAMP(),
    CONSTRAINT RATES_PK PRIMARY KEY (RATE_DATE, BASE_CURRENCY, QUOTE_CURRENCY)  -- informational
);

CREATE FILE FORMAT IF NOT EXISTS RAW.EXCHANGE_RATES.DLT_PARQUET
    TYPE = PARQUET
    USE_LOGICAL_TYPE = TRUE;  -- read parquet DATE and TIMESTAMP(UTC) logical types as such

CREATE STAGE IF NOT EXISTS RAW.EXCHANGE_RATES.LANDING
    URL = 's3://data-pipelines-raw-landing/exchange-rates/'
    STORAGE_INTEGRATION = S3_RAW_LANDING
    FILE_FORMAT = RAW.EXCHANGE_RATES.DLT_PARQUET;

CREATE PIPE IF NOT EXISTS RAW.EXCHANGE_RATES.RATES_PIPE
    AUTO_INGEST = TRUE
    COMMENT = 'exchange_rates parquet from dlt (pipelines/exchange_rates.py) -> RAW.EXCHANGE_RATES.RATES'
AS
COPY INTO RAW.EXCHANGE_RATES.RATES
    (RATE_DATE, BASE_CURRENCY, QUOTE_CURRENCY, RATE, PROVIDER, LOADED_AT, _DLT_LOAD_ID, _SOURCE_FILE)
FROM (
    SELECT
        $1:rate_date::DATE,
        $1:base_currency::VARCHAR,
        $1:quote_currency::VARCHAR,
        $1:rate::FLOAT,
        $1:provider::VARCHAR,
        $1:loaded_at::TIMESTAMP_TZ,
        $1:_dlt_load_id::VARCHAR,
        METADATA$FILENAME
    FROM @RAW.EXCHANGE_RATES.LANDING/rates/
)
PATTERN = '.*[.]parquet'
FILE_FORMAT = (FORMAT_NAME = 'RAW.EXCHANGE_RATES.DLT_PARQUET');
