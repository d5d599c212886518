#!/usr/bin/env bash
# Runs pebble-challtestsrv (mock DNS answering every name with 127.0.0.1) and
# Pebble (test ACME CA) side by side. Meant for `network_mode: host`.
# With PEBBLE_DNS_SERVER=ADDRESS:PORT, Pebble resolves through that DNS server instead (e.g. the
# bind9 of config/dns, for dns-01) and pebble-challtestsrv is not started.
# `entrypoint.sh healthcheck` exits 0 once the ACME directory answers.
set -euo pipefail

: "${PEBBLE_LISTEN:=127.0.0.1:14000}"               # ACME API (HTTPS)
: "${PEBBLE_MANAGEMENT:=127.0.0.1:15000}"           # Pebble management API (HTTPS)
: "${PEBBLE_HTTP_PORT:=80}"                         # port the VA dials for http-01
: "${PEBBLE_TLS_PORT:=443}"                         # port the VA dials for tls-alpn-01
: "${PEBBLE_DNS:=127.0.0.1:8053}"                   # challtestsrv mock DNS
: "${PEBBLE_CHALLTEST_MANAGEMENT:=127.0.0.1:8055}"  # challtestsrv management API (HTTP)
: "${PEBBLE_DNS_SERVER:=}"                          # an external DNS server: no challtestsrv
: "${PEBBLE_VALIDITY_SECONDS:=7776000}"             # lifetime of issued certificates
: "${PEBBLE_CA_DIR:=/pebble-ca}"                    # where ca.pem (trust for the API) is published
: "${PEBBLE_STATE_DIR:=/run/pebble}"
: "${PEBBLE_EAB_KID:=}"                              # with PEBBLE_EAB_KEY (base64url): EAB required
: "${PEBBLE_EAB_KEY:=}"

if [[ "${1:-}" == healthcheck ]]; then
  host=${PEBBLE_LISTEN%:*} port=${PEBBLE_LISTEN##*:}
  [[ -z "$host" || "$host" == 0.0.0.0 ]] && host=127.0.0.1
  printf 'GET /dir HTTP/1.0\r\nHost: localhost\r\n\r\n' \
    | timeout 4 openssl s_client -quiet -verify_return_error -CAfile "$PEBBLE_STATE_DIR/ca.pem" \
        -connect "$host:$port" -servername localhost 2>/dev/null \
    | grep -q newAccount
  exit
fi
if (($#)); then exec "$@"; fi # e.g. `docker run IMAGE bash`

# Throwaway CA + server certificate for Pebble's HTTPS listeners.
mkdir -p "$PEBBLE_STATE_DIR" "$PEBBLE_CA_DIR"
cd "$PEBBLE_STATE_DIR"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc -days 3650 \
  -subj "/CN=Pebble API throwaway CA" -keyout ca.key -out ca.pem \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc \
  -subj /CN=localhost -keyout key.pem -out server.csr 2>/dev/null
printf '%s\n' "subjectAltName=${PEBBLE_CERT_SANS:-DNS:localhost,DNS:pebble,IP:127.0.0.1}" \
  basicConstraints=critical,CA:FALSE keyUsage=critical,digitalSignature extendedKeyUsage=serverAuth >server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -days 3650 -extfile server.ext -out cert.pem 2>/dev/null
install -m 0644 ca.pem "$PEBBLE_CA_DIR/.ca.pem.tmp"    # publish atomically, world-readable
mv -f "$PEBBLE_CA_DIR/.ca.pem.tmp" "$PEBBLE_CA_DIR/ca.pem"
chmod 0755 "$PEBBLE_CA_DIR"

eab_required=false eab_keys="{}"
if [[ -n "$PEBBLE_EAB_KID" && -n "$PEBBLE_EAB_KEY" ]]; then
  eab_required=true eab_keys="{\"$PEBBLE_EAB_KID\": \"$PEBBLE_EAB_KEY\"}"
fi
cat >pebble-config.json <<EOF
{
  "pebble": {
    "listenAddress": "$PEBBLE_LISTEN",
    "managementListenAddress": "$PEBBLE_MANAGEMENT",
    "certificate": "$PEBBLE_STATE_DIR/cert.pem",
    "privateKey": "$PEBBLE_STATE_DIR/key.pem",
    "httpPort": $PEBBLE_HTTP_PORT,
    "tlsPort": $PEBBLE_TLS_PORT,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": $eab_required,
    "externalAccountMACKeys": $eab_keys,
    "certificateValidityPeriod": $PEBBLE_VALIDITY_SECONDS,
    "profiles": {
      "default": {"description": "default profile", "validityPeriod": $PEBBLE_VALIDITY_SECONDS},
      "shortlived": {"description": "short-lived profile", "validityPeriod": $PEBBLE_VALIDITY_SECONDS}
    }
  }
}
EOF
dns=${PEBBLE_DNS_SERVER:-$PEBBLE_DNS}
echo "pebble-entrypoint: ACME directory https://$PEBBLE_LISTEN/dir, CA cert $PEBBLE_CA_DIR/ca.pem," \
  "http-01 port $PEBBLE_HTTP_PORT, DNS $dns${PEBBLE_DNS_SERVER:+ (external)}," \
  "validity ${PEBBLE_VALIDITY_SECONDS}s"

pids=()
if [[ -z "$PEBBLE_DNS_SERVER" ]]; then
  pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" -dns01 "$PEBBLE_DNS" \
    -http01 "" -https01 "" -tlsalpn01 "" -doh "" -management "$PEBBLE_CHALLTEST_MANAGEMENT" &
  pids+=($!)
fi
pebble -config pebble-config.json -dnsserver "$dns" &
pids+=($!)

stopping=0
trap 'stopping=1; kill -TERM "${pids[@]}" 2>/dev/null || true' TERM INT
status=0
wait -n || status=$?   # returns when either process exits (or on SIGTERM)
kill -TERM "${pids[@]}" 2>/dev/null || true
wait || true
if ((stopping)); then status=0; elif ((status == 0)); then status=1; fi  # an unasked exit is a failure
echo "pebble-entrypoint: stopped (exit $status)"
exit "$status"
