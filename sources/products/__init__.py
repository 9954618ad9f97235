"""Product catalogue tables from the shop's PostgreSQL database (default ``public.products``).

Owner: data platform team (#data-platform).
Source: PostgreSQL through dlt's ``sql_table`` (https://dlthub.com/docs/dlt-ecosystem/verified-sources/sql_database)
with the ADBC PostgreSQL driver streaming Arrow batches (https://arrow.apache.org/adbc/).
Loaded with ``write_disposition="merge"`` on each table's primary key, incrementally on its cursor
column (``updated_at``) with a lag window; rows whose soft-delete column (``deleted_at``) is set are
removed from the destination (or kept, with ``soft_delete = "flag"``).
"""

from sources.products.source import ProductsDatabaseError, TableSpec, close_connections, products_source

__all__ = ["ProductsDatabaseError", "TableSpec", "close_connections", "products_source"]
