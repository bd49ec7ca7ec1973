#!/usr/bin/env bash
# Installs the Debian packages the test suite runs, only when one is missing.
# Non-interactive; needs root (or sudo) and the Debian package registry.
set -euo pipefail

# command -> package
declare -A need=(
  [openssl]=openssl
  [gpgsm]=gpgsm
  [dovecot]=dovecot-imapd
  [/usr/lib/dovecot/lmtp]=dovecot-lmtpd
  [/usr/lib/postfix/sbin/master]=postfix
  [swaks]=swaks
  [msmtp]=msmtp
  [mutt]=mutt
  [mbsync]=isync
  [chromium]=chromium
)

missing=()
for cmd in "${!need[@]}"; do
  if [[ $cmd == /* ]]; then
    [[ -x $cmd ]] || missing+=("${need[$cmd]}")
  else
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
  fi
done

# PostgreSQL's server binaries live under a versioned directory.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "test tools: all present"
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "test tools missing (${missing[*]}) and not root: install them, or the tests that need them skip" >&2
    exit 0
  fi
fi
mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "test tools: installing ${pkgs[*]}"
# apt's lock may be held by another apt-get for a while; wait up to 5 minutes.
$sudo apt-get -o DPkg::Lock::Timeout=300 update -q
echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
$sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q "${pkgs[@]}"
