"""The moto fixture is a real server reached over HTTP with standard AWS settings."""

from __future__ import annotations

import boto3

from tests.fixtures.aws import Aws


def test_s3_and_secrets_manager_round_trip_over_loopback(aws: Aws) -> None:
    s3 = boto3.client("s3")  # endpoint and region from the environment, as in production code
    s3.create_bucket(Bucket="raw-bucket", CreateBucketConfiguration={"LocationConstraint": aws.region})
    s3.put_object(Bucket="raw-bucket", Key="k", Body=b"v")
    assert s3.get_object(Bucket="raw-bucket", Key="k")["Body"].read() == b"v"
    assert s3.meta.endpoint_url == aws.endpoint_url
    sm = boto3.client("secretsmanager")
    sm.create_secret(Name="dlt/x", SecretString="{}")
    assert sm.get_secret_value(SecretId="dlt/x")["SecretString"] == "{}"


def test_each_test_starts_with_an_empty_account(aws: Aws) -> None:
    assert boto3.client("s3").list_buckets()["Buckets"] == []
