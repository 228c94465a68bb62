"""Signed sts:GetCallerIdentity envelopes for Excalibur's aws-sts exchange, made with
botocore against a moto server (which issues the credentials and checks signatures).

Usage: aws_sts_envelopes.py <moto endpoint> <server id>
Prints a JSON object of named subject tokens: a good one (role ci-runner), and ones that
must be refused (tampered signature, signed for another server, server id not signed,
expired, a role the config does not admit, another URL).
"""
import base64
import datetime
import json
import sys

import boto3
import botocore.auth
import botocore.credentials
from botocore.awsrequest import AWSRequest

ENDPOINT, SERVER_ID = sys.argv[1], sys.argv[2]
BODY = "Action=GetCallerIdentity&Version=2011-06-15"
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]})


def client(service, **creds):
    return boto3.client(service, endpoint_url=ENDPOINT, region_name="us-east-1",
                        aws_access_key_id=creds.get("key", "setup"),
                        aws_secret_access_key=creds.get("secret", "setup"),
                        aws_session_token=creds.get("token"))


def assume(role):
    client("iam").create_role(RoleName=role, AssumeRolePolicyDocument=TRUST)
    c = client("sts").assume_role(RoleArn=f"arn:aws:iam::123456789012:role/{role}",
                                  RoleSessionName="build-42")["Credentials"]
    return botocore.credentials.Credentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])


def b64(data):
    return base64.b64encode(data.encode()).decode()


def envelope(creds, url=None, server_id=SERVER_ID, sign_server_id=True, tamper=False):
    """What a workload sends: the request signed but not sent, in Vault's field names."""
    url = url or ENDPOINT
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    if sign_server_id:
        headers["X-Excalibur-Server-ID"] = server_id
    req = AWSRequest(method="POST", url=url, data=BODY, headers=headers)
    botocore.auth.SigV4Auth(creds, "sts", "us-east-1").add_auth(req)
    signed = dict(req.headers.items())
    if not sign_server_id:
        signed["X-Excalibur-Server-ID"] = server_id
    if tamper:
        auth = signed["Authorization"]
        signed["Authorization"] = auth[:-4] + ("1111" if not auth.endswith("1111") else "2222")
    doc = {"iam_http_request_method": "POST", "iam_request_url": b64(url),
           "iam_request_body": b64(BODY), "iam_request_headers": b64(json.dumps(signed))}
    return b64(json.dumps(doc))


ci = assume("ci-runner")
admin = assume("admin")
out = {
    "good": envelope(ci),
    "tampered": envelope(ci, tamper=True),
    "other_server": envelope(ci, server_id="another-service.example"),
    "server_id_unsigned": envelope(ci, sign_server_id=False),
    "other_url": envelope(ci, url=sys.argv[3] if len(sys.argv) > 3 else "http://127.0.0.1:9/"),
    "admin": envelope(admin),
}
real_now = botocore.auth.get_current_datetime
botocore.auth.get_current_datetime = lambda: datetime.datetime(2020, 1, 1, 12, 0, 0)
out["expired"] = envelope(ci)
botocore.auth.get_current_datetime = real_now
print(json.dumps(out))
