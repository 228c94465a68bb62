"""Token endpoints of Azure AD and GCP STS over TLS, written from their documented
request and response shapes, for Excalibur's federated JWT-bearer presets. Each logs the
form it received as a JSON line and answers with a fixed access token when the form has
the documented shape (400 otherwise).

Usage: federation_token_endpoints.py <port> <cert> <key> <log>
"""
import http.server
import json
import ssl
import sys
import urllib.parse

PORT, CERT, KEY, LOG = sys.argv[1:5]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
        form = dict(urllib.parse.parse_qsl(body))
        host = self.headers.get("host", "").split(":")[0]
        with open(LOG, "a") as f:
            f.write(json.dumps({"host": host, "path": self.path, "form": form}) + "\n")
        if host == "login.microsoftonline.com" and self.path.endswith("/oauth2/v2.0/token"):
            ok = (form.get("grant_type") == "client_credentials" and form.get("client_id")
                  and form.get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                  and form.get("client_assertion") and form.get("scope"))
            answer = {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                      "access_token": "eyAzureAccessTokenFromFederation"}
        elif host == "sts.googleapis.com" and self.path == "/v1/token":
            ok = (form.get("grant_type") == "urn:ietf:params:oauth:grant-type:token-exchange"
                  and form.get("subject_token_type") == "urn:ietf:params:oauth:token-type:jwt"
                  and form.get("requested_token_type") == "urn:ietf:params:oauth:token-type:access_token"
                  and form.get("subject_token") and form.get("audience", "").startswith("//iam.googleapis.com/"))
            answer = {"access_token": "ya29.gcpFederatedAccessToken",
                      "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                      "token_type": "Bearer", "expires_in": 3600}
        else:
            ok, answer = False, {}
        data = json.dumps(answer if ok else {"error": "invalid_request"}).encode()
        self.send_response(200 if ok else 400)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", int(PORT)), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(CERT, KEY)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()
