#!/usr/bin/env bash
# Install the Debian packages mailprov's test suite runs for real: Postfix, Dovecot (with Pigeonhole),
# an authoritative DNS server (knot), OpenDKIM, rspamd and Redis, swaks. Idempotent; needs root
# (or sudo). Services are NOT started by the packages: the tests start their own
# instances on 127.0.0.1 from the configs mailprov renders.
set -euo pipefail

PACKAGES=(
  postfix postfix-sqlite postfix-pgsql postfix-pcre postfix-lmdb
  dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-sqlite dovecot-pgsql
  # Pigeonhole (Sieve at delivery, ManageSieve, sievec) and a real ManageSieve client.
  dovecot-sieve dovecot-managesieved sieve-connect
  knot knot-dnsutils
  # Independent judges of what mailprov publishes and serves: kzonecheck (zones),
  # named-checkzone, nginx (the web snippet), ip (loopback in a private namespace).
  knot-dnssecutils bind9-utils nginx-light iproute2 curl
  opendkim opendkim-tools
  # rspamd (the inbound filter milter) and the private Redis its tests start on loopback.
  rspamd redis-server
  swaks sqlite3 openssl
  # A private primary + streaming replica (tests/integration/pgcluster.py): initdb, pg_ctl,
  # pg_basebackup; the system cluster is not started or touched.
  postgresql-15 postgresql-client-15
  testssl.sh  # rates the TLS of the real stack (tests/integration/render/test_render_tls.py)
  systemd  # systemd-analyze verify/security for the rendered units (no systemd needs to run)
  chromium  # the relay's web inbox and the portal in a real browser, driven by Playwright (its own download is not used)
  # The units' emulated sandbox (tests/integration/sandbox.py): setpriv, unshare, mount(2)
  # and libseccomp for SystemCallFilter=/RestrictAddressFamilies=.
  util-linux mount libseccomp2
  mandoc  # lints the generated man pages (tests/integration/test_manpages_completion.py)
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# Node runs npm's Mailpit client (mailpit-api) against the relay's Mailpit-compatible API.
# Any Node with npm will do (NodeSource's nodejs package brings its own npm and conflicts
# with Debian's), so the command is checked, not the package.
command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -eq 0 ]; then
  echo "test packages: all installed"
else
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing: ${missing[*]}"
  # Keep the packages' own services from starting (they would listen on all
  # interfaces with the distribution's configs): a temporary policy-rc.d says no.
  made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  trap '[ -n "$made_policy" ] && $SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  echo "postfix postfix/mailname string mail.example.test" | $SUDO debconf-set-selections
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Dovecot delivers into Maildirs owned by a dedicated user.
getent group vmail >/dev/null || ${SUDO:-} groupadd -g 5000 vmail
getent passwd vmail >/dev/null || ${SUDO:-} useradd -u 5000 -g 5000 -d /nonexistent -s /usr/sbin/nologin -M vmail
# The relay's unit reads the site config through this group (SupplementaryGroups=).
getent group mailprov >/dev/null || ${SUDO:-} groupadd --system mailprov
