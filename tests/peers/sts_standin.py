"""An STS stand-in over TLS, written from the documented AssumeRoleWithWebIdentity
request and response shapes: it answers with the credentials given on its command line
(so an S3 that knows them can check the signatures made with them), logs every request
body as a JSON line, and fails the first call with a 500 (a failure must not be cached).

Usage: sts_standin.py <port> <cert> <key> <log> <lifetime s> <akid> <secret> <token>
"""
import datetime
import http.server
import json
import ssl
import sys
import urllib.parse

PORT, CERT, KEY, LOG, LIFE, AKID, SECRET, TOKEN = sys.argv[1:9]
calls = []


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
        form = dict(urllib.parse.parse_qsl(body))
        calls.append(form)
        with open(LOG, "a") as f:
            f.write(json.dumps(form) + "\n")
        if len(calls) == 1:
            self.reply(500, "<ErrorResponse><Error><Code>ServiceUnavailable</Code></Error></ErrorResponse>")
            return
        if form.get("Action") != "AssumeRoleWithWebIdentity" or not form.get("WebIdentityToken"):
            self.reply(400, "<ErrorResponse><Error><Code>InvalidAction</Code></Error></ErrorResponse>")
            return
        expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=int(LIFE))
        self.reply(200, f"""<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>sigv4</SubjectFromWebIdentityToken>
    <AssumedRoleUser><Arn>{form.get("RoleArn")}/{form.get("RoleSessionName")}</Arn><AssumedRoleId>AROA:x</AssumedRoleId></AssumedRoleUser>
    <Credentials>
      <SessionToken>{TOKEN}</SessionToken>
      <SecretAccessKey>{SECRET}</SecretAccessKey>
      <Expiration>{expires.strftime("%Y-%m-%dT%H:%M:%SZ")}</Expiration>
      <AccessKeyId>{AKID}</AccessKeyId>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>""")

    def reply(self, status, text):
        data = text.encode()
        self.send_response(status)
        self.send_header("content-type", "text/xml")
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
