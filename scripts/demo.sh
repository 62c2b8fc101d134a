#!/bin/sh
# The README's demo: an example site on SQLite under ./demo (recreated each run).
set -eu
DEMO=${1:-demo}
rm -rf "$DEMO"
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }

run mailprov init --dir "$DEMO" --domain example.test
cd "$DEMO"
run mailprov domain add пример.рф
say "mailprov mailbox add alice@example.test --name 'Alice Liddell' --quota 2G --password-stdin  (password on stdin)"
printf 'Wonder-Land-1865\n' | mailprov mailbox add alice@example.test --name 'Alice Liddell' --quota 2G --password-stdin
run mailprov mailbox add bob@example.test --name 'Bob' --generate
run mailprov mailbox add ivan@пример.рф --name 'Иван' --generate --temporary
run mailprov alias add postmaster@example.test alice@example.test
run mailprov alias add team@example.test alice@example.test bob@example.test
run mailprov alias add @example.test alice@example.test
say "mailprov mailbox add alice@example.test --generate   (taken: refused, with suggestions)"
mailprov mailbox add alice@example.test --generate || echo "(exit status $?)"
run mailprov domain list
run mailprov mailbox list
run mailprov alias list
run mailprov audit list
run mailprov audit verify

# Config rendering: a self-signed certificate for the demo, the site's Postfix,
# Dovecot and systemd files rendered into ./rendered, then checked by the real
# servers where they are installed.
run mailprov tls self-signed --host mail.example.test --out tls
cat >> mailprov.toml <<'TOML'

[tls]
cert_file = "tls/cert.pem"
key_file = "tls/key.pem"
TOML
run mailprov deploy render --out rendered
if PATH="$PATH:/usr/sbin:/sbin" command -v postconf >/dev/null 2>&1 \
   && command -v doveconf >/dev/null 2>&1; then
  run mailprov deploy plan --target rendered
else
  say "Postfix/Dovecot not installed: the rendered files were not checked."
  echo "  Install them to check: sudo apt-get install postfix postfix-sqlite dovecot-core \\"
  echo "    dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-sqlite   (then: mailprov deploy plan --target rendered)"
fi

# -- the identity gate: one request through it with the TEST issuer. The site's local SMTP
# server is mailprov's own relay (capture mode): the confirmation code is caught there.
say "mailprov relay serve --listen 127.0.0.1:0 --storage relay --json &   (the demo's local SMTP server)"
mailprov relay serve --listen 127.0.0.1:0 --storage relay --api-listen '' --json > relay.json 2> relay.log &
RELAY_PID=$!
trap 'kill "$RELAY_PID" 2>/dev/null' EXIT
for _ in $(seq 100); do grep -q '"ready": true' relay.json 2>/dev/null && break; sleep 0.1; done
PORT=$(python3 -c 'import json; print(json.load(open("relay.json"))["smtp"].rsplit(":", 1)[1])')
printf '\n[notify]\nsmarthost = "127.0.0.1"\nport = %s\nsender = "gate@example.test"\n' "$PORT" >> mailprov.toml
run mailprov identity test-issuer init test-issuer --audience urn:mailprov:demo
ISS=$(python3 -c 'import json; print(json.load(open("test-issuer/issuer.json"))["iss"])')
run mailprov identity trust add-issuer --iss "$ISS" --jwks test-issuer/jwks.json --audience urn:mailprov:demo
run mailprov request open carol@example.test --kind personal --recovery carol@home.example --name 'Test Person' --accept-terms
RID=$(mailprov --json request list --state open | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"][0]["id"])')
NONCE=$(mailprov --json request show "$RID" | python3 -c 'import json,sys; print(json.load(sys.stdin)["request"]["nonce"])')
say "mailprov identity test-issuer token --dir test-issuer --nonce $NONCE --sub demo-1 --level ial2 > token.jwt"
mailprov identity test-issuer token --dir test-issuer --nonce "$NONCE" --sub demo-1 --level ial2 > token.jwt
run mailprov request verify "$RID" --token-file token.jwt
say "mailprov relay wait --mailbox carol@home.example --subject 'Confirmation code' --storage relay   (the code, as a test rig would read it)"
MSG=$(mailprov relay wait --mailbox carol@home.example --subject 'Confirmation code' --storage relay --timeout 10 --json \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["message"]["id"])')
run mailprov relay show "$MSG" --storage relay
CODE=$(mailprov relay show "$MSG" --storage relay --raw | grep -o 'is [0-9]\{6\}\.' | head -1 | cut -c4-9)
say "(the code caught by the relay: $CODE)"
say "mailprov request confirm $RID --code-stdin   (code on stdin)"
printf '%s\n' "$CODE" | mailprov request confirm "$RID" --code-stdin
run mailprov request show "$RID"
run mailprov mailbox show carol@example.test

# -- the portal: the same site as web pages. The TEST identity provider is turned on for the
# demo only ([web] test_issuer); the relay catches the codes the site sends.
cat >> mailprov.toml <<'TOML'

[web]
listen = "127.0.0.1:8080"
test_issuer = "test-issuer"   # DEMO ONLY: a TEST identity provider that confirms anyone
TOML
MAILPROV=$(command -v mailprov)
cat > portal.sh <<SH
#!/bin/sh
# The demo site's portal on loopback (written by scripts/demo.sh): mailprov's relay catches
# the mail the site sends, and mailprov serve answers the pages with the TEST identity
# provider turned on. Ctrl-C stops both.
set -eu
cd "\$(dirname "\$0")"
"$MAILPROV" relay serve --listen 127.0.0.1:$PORT --storage relay --api-listen '' > relay.log 2>&1 &
RELAY=\$!
trap 'kill \$RELAY 2>/dev/null' EXIT INT TERM
echo "The codes go to the recovery address you type; read them in another terminal with:"
echo "  cd \$(pwd) && $MAILPROV relay wait --mailbox YOUR-RECOVERY-ADDRESS --subject 'Confirmation code' --timeout 600 --storage relay"
echo "Open http://127.0.0.1:8080/ (Ctrl-C stops the portal and the relay)"
"$MAILPROV" serve
SH
say "mailprov serve --listen 127.0.0.1:0 --json &   (the portal answers: a quick look, then it stops)"
mailprov serve --listen 127.0.0.1:0 --json > serve.json 2> serve.log &
SERVE_PID=$!
trap 'kill "$RELAY_PID" "$SERVE_PID" 2>/dev/null' EXIT
for _ in $(seq 100); do grep -q '"ready": true' serve.json 2>/dev/null && break; sleep 0.1; done
python3 - <<'PY'
import json, urllib.request
url = json.load(open("serve.json"))["url"]
for path, lang in (("/apply", "en"), ("/apply", "ru")):
    page = urllib.request.urlopen(urllib.request.Request(url + path, headers={"Accept-Language": lang}))
    text = page.read().decode()
    assert page.status == 200 and f'<html lang="{lang}">' in text, (path, lang)
    print(f"  GET {path} (Accept-Language: {lang}): {page.status}, {len(text)} bytes")
PY
kill "$SERVE_PID"

printf '\n\033[1mThe portal for this demo site (the relay and the TEST identity provider with it):\033[0m\n\n'
printf '  sh %s/portal.sh\n\n' "$DEMO"
printf 'then open http://127.0.0.1:8080/\n'
