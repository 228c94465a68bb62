"""An OAuth2 authorization server with the refresh_token grant (rotating refresh
tokens) and a resource server, built on Authlib, for Excalibur's end-to-end tests.

usage: oauth_refresh_as.py PORT CERT_PEM KEY_PEM CLIENT_SECRET INITIAL_REFRESH_TOKEN EXPIRES_IN
"""
import secrets
import ssl
import sys
import threading
import time

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, grants
from flask import Flask, jsonify, request

port, cert, key, client_secret, initial_refresh, expires_in = sys.argv[1:7]
CLIENT_ID = "excalibur-refresh"
LOCK = threading.Lock()
REFRESH = {initial_refresh: {"revoked": False}}
ACCESS = {}
STATS = {"refreshes": 0, "rejected": 0}


class Client(ClientMixin):
    def get_client_id(self):
        return CLIENT_ID

    def get_default_redirect_uri(self):
        return None

    def get_allowed_scope(self, scope):
        return scope or ""

    def check_redirect_uri(self, redirect_uri):
        return False

    def check_client_secret(self, secret):
        return secrets.compare_digest(secret, client_secret)

    def check_endpoint_auth_method(self, method, endpoint):
        return method == "client_secret_post"

    def check_response_type(self, response_type):
        return False

    def check_grant_type(self, grant_type):
        return grant_type == "refresh_token"


class Token(TokenMixin):
    def __init__(self, value):
        self.value = value

    def check_client(self, client):
        return client.get_client_id() == CLIENT_ID

    def get_scope(self):
        return "read"

    def get_expires_in(self):
        return int(expires_in)

    def is_expired(self):
        return False

    def is_revoked(self):
        return REFRESH.get(self.value, {"revoked": True})["revoked"]

    def get_user(self):
        return {"id": "workload"}


CLIENT = Client()


def save_token(token, req):
    with LOCK:
        ACCESS[token["access_token"]] = time.time() + token["expires_in"]
        if "refresh_token" in token:
            REFRESH[token["refresh_token"]] = {"revoked": False}
        STATS["refreshes"] += 1


class RefreshGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_post"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token):
        with LOCK:
            entry = REFRESH.get(refresh_token)
            if entry is None or entry["revoked"]:
                STATS["rejected"] += 1
                return None
        return Token(refresh_token)

    def authenticate_user(self, refresh_token):
        return {"id": "workload"}

    def revoke_old_credential(self, refresh_token):
        with LOCK:
            REFRESH[refresh_token.value]["revoked"] = True


app = Flask(__name__)
app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"refresh_token": int(expires_in)}
app.config["OAUTH2_REFRESH_TOKEN_GENERATOR"] = True
server = AuthorizationServer(app, query_client=lambda cid: CLIENT if cid == CLIENT_ID else None,
                             save_token=save_token)
server.register_grant(RefreshGrant)


@app.post("/token")
def token():
    return server.create_token_response()


@app.get("/api/<path:path>")
def resource(path):
    auth = request.headers.get("Authorization", "")
    tok = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
    with LOCK:
        valid = tok is not None and ACCESS.get(tok, 0) > time.time()
    if not valid:
        return jsonify(error="invalid_token"), 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    return jsonify(ok=True, path=path)


@app.get("/_stats")
def stats():
    with LOCK:
        return jsonify({**STATS, "live_refresh_tokens": sum(1 for v in REFRESH.values() if not v["revoked"])})


@app.post("/_revoke_access")
def revoke_access():
    with LOCK:
        ACCESS.clear()
    return jsonify(ok=True)


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
app.run(host="127.0.0.1", port=int(port), ssl_context=ctx, threaded=True)
