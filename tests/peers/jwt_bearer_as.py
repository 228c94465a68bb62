"""An RFC 7523 JWT-bearer authorization server and resource server built on Authlib,
for Excalibur's end-to-end tests. Not Excalibur code: the peer it must interoperate with.

usage: jwt_bearer_as.py PORT CERT_PEM KEY_PEM CLIENT_PUBLIC_KEY_PEM AUDIENCE EXPIRES_IN
"""
import ssl
import sys
import threading
import time

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc7523 import JWTBearerGrant
from flask import Flask, jsonify, request
from joserfc import jwk

port, cert, key, client_pub, audience, expires_in = sys.argv[1:7]
CLIENT_ID = "excalibur-client"
TOKENS = {}
STATS = {"token_requests": 0, "issued": 0, "outage": False}
LOCK = threading.Lock()


class Client(ClientMixin):
    def get_client_id(self):
        return CLIENT_ID

    def get_default_redirect_uri(self):
        return None

    def get_allowed_scope(self, scope):
        return scope or ""

    def check_redirect_uri(self, redirect_uri):
        return False

    def check_client_secret(self, client_secret):
        return False

    def check_endpoint_auth_method(self, method, endpoint):
        return method == "none"

    def check_response_type(self, response_type):
        return False

    def check_grant_type(self, grant_type):
        return grant_type == JWTBearerGrant.GRANT_TYPE


CLIENT = Client()


def save_token(token, req):
    with LOCK:
        TOKENS[token["access_token"]] = time.time() + token["expires_in"]
        STATS["issued"] += 1


app = Flask(__name__)
app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {JWTBearerGrant.GRANT_TYPE: int(expires_in)}
server = AuthorizationServer(app, query_client=lambda cid: CLIENT if cid == CLIENT_ID else None,
                             save_token=save_token)


class Grant(JWTBearerGrant):
    def resolve_issuer_client(self, issuer):
        return CLIENT if issuer == CLIENT_ID else None

    def resolve_client_public_key(self, client):
        with open(client_pub) as f:
            return jwk.import_key(f.read())

    def authenticate_user(self, subject):
        return {"sub": subject} if subject == CLIENT_ID else None

    def has_granted_permission(self, client, user):
        return True

    def get_audiences(self):
        return [audience]


server.register_grant(Grant)


@app.post("/token")
def token():
    with LOCK:
        STATS["token_requests"] += 1
        outage = STATS["outage"]
    if outage:
        return jsonify(error="temporarily_unavailable"), 503
    # Slow enough that concurrent callers overlap: single flight must share this exchange.
    time.sleep(0.3)
    return server.create_token_response()


@app.get("/api/<path:path>")
def resource(path):
    auth = request.headers.get("Authorization", "")
    tok = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
    with LOCK:
        valid = tok is not None and TOKENS.get(tok, 0) > time.time()
    if not valid:
        return jsonify(error="invalid_token"), 401
    # Echo the credential back, as careless APIs do.
    return jsonify(ok=True, path=path, authorization=auth)


@app.get("/_stats")
def stats():
    with LOCK:
        return jsonify(STATS)


@app.post("/_outage/<state>")
def outage(state):
    with LOCK:
        STATS["outage"] = state == "on"
    return jsonify(STATS)


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
app.run(host="127.0.0.1", port=int(port), ssl_context=ctx, threaded=True)
