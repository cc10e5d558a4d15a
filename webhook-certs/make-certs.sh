#!/usr/bin/env bash
# Makes a CA and a serving certificate for the admission webhook, and the caBundle for the
# ValidatingWebhookConfiguration.
#
#   webhook-certs/make-certs.sh [OUT_DIR] [SAN...]
#
# OUT_DIR (default webhook-certs/out) gets:
#   ca.crt ca.key      the CA (kept and reused on later runs, so the caBundle stays valid
#                      while the serving certificate rotates; --new-ca makes a new one)
#   tls.crt tls.key    the serving certificate (EC P-256), the key names of a
#                      kubernetes.io/tls Secret
#   caBundle           base64 of ca.crt on one line, for clientConfig.caBundle
# Each SAN is DNS:name or IP:address (a bare name is a DNS name, a bare address an IP).
# Without SANs: the Service's names for SERVICE (default konflux-telemetry) in NAMESPACE
# (default segment-bridge), and IP:127.0.0.1 for tests.
# DAYS (default 365) is the serving certificate's validity, CA_DAYS (default 3650) the CA's.
set -euo pipefail

new_ca=false
args=()
for a in "$@"; do
  case "$a" in
    --new-ca) new_ca=true ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$a") ;;
  esac
done
set -- "${args[@]+"${args[@]}"}"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/out}"
[ $# -gt 0 ] && shift
service="${SERVICE:-konflux-telemetry}"
namespace="${NAMESPACE:-segment-bridge}"
days="${DAYS:-365}"
ca_days="${CA_DAYS:-3650}"

command -v openssl >/dev/null || { echo "make-certs: openssl not found" >&2; exit 1; }

sans=()
if [ $# -eq 0 ]; then
  sans=("DNS:$service" "DNS:$service.$namespace" "DNS:$service.$namespace.svc"
        "DNS:$service.$namespace.svc.cluster.local" "IP:127.0.0.1")
else
  for s in "$@"; do
    case "$s" in
      DNS:*|IP:*) sans+=("$s") ;;
      *[!0-9.]*) if [[ "$s" == *:* ]]; then sans+=("IP:$s"); else sans+=("DNS:$s"); fi ;;
      *) sans+=("IP:$s") ;;
    esac
  done
fi
san_line="$(IFS=,; echo "${sans[*]}")"
# The subject's CN: the first DNS name, else the first SAN's value.
cn="${sans[0]#*:}"
for s in "${sans[@]}"; do case "$s" in DNS:*) cn="${s#DNS:}"; break ;; esac; done

mkdir -p "$out"
umask 077
tmp="$(mktemp -d "$out/.make-certs.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

if $new_ca || [ ! -s "$out/ca.crt" ] || [ ! -s "$out/ca.key" ]; then
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$tmp/ca.key" -sha256 -days "$ca_days" \
    -subj "/CN=konflux-telemetry-webhook-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$tmp/ca.crt"
  mv "$tmp/ca.key" "$out/ca.key"
  mv "$tmp/ca.crt" "$out/ca.crt"
  echo "make-certs: new CA in $out/ca.crt" >&2
fi

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/tls.key" 2>/dev/null
openssl req -new -key "$tmp/tls.key" -subj "/CN=$cn" -out "$tmp/tls.csr"
cat > "$tmp/ext.cnf" <<EXT
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $san_line
EXT
openssl x509 -req -in "$tmp/tls.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
  -CAcreateserial -CAserial "$tmp/ca.srl" -sha256 -days "$days" \
  -extfile "$tmp/ext.cnf" -out "$tmp/tls.crt" 2>/dev/null
openssl verify -CAfile "$out/ca.crt" "$tmp/tls.crt" >/dev/null

# The key before the certificate: a reader polling the pair sees a mismatch at worst
# (rejected, tried again), never a certificate without its key.
chmod 600 "$tmp/tls.key"
chmod 644 "$tmp/tls.crt"
mv "$tmp/tls.key" "$out/tls.key"
mv "$tmp/tls.crt" "$out/tls.crt"
base64 < "$out/ca.crt" | tr -d '\n' > "$out/caBundle"
chmod 644 "$out/ca.crt" "$out/caBundle"
echo "make-certs: serving certificate for $san_line in $out/tls.crt (valid $days days); caBundle in $out/caBundle" >&2
