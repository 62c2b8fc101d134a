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
