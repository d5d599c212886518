#!/usr/bin/env bash
# bind9 as the DNS-01 test bed: authoritative for DNS_ZONE, RFC 2136 updates of TXT records signed
# with one TSIG key, every name answering A DNS_ANSWER_A. Meant for `network_mode: host`.
# Publishes a certbot-dns-rfc2136 credentials file (mode 0600, written atomically) at
# $DNS_OUT_DIR/$DNS_CREDENTIALS_NAME before named starts.
# `entrypoint.sh healthcheck` exits 0 once named answers a TSIG-signed SOA query for every zone.
set -euo pipefail

: "${DNS_ZONE:=example.test}"          # zone(s), comma- or space-separated
: "${DNS_LISTEN:=127.0.0.1:8053}"      # address:port named listens on (UDP and TCP)
: "${DNS_ANSWER_A:=127.0.0.1}"         # A record of the apex, ns1 and every other name (wildcard)
: "${DNS_KEY_NAME:=certbot-sidecar}"   # TSIG key name
: "${DNS_TSIG_ALGORITHM:=hmac-sha256}" # TSIG algorithm
: "${DNS_TSIG_SECRET:=}"               # base64 secret; empty: generated at first start
: "${DNS_SERVER_IP:=}"                 # dns_rfc2136_server in the ini; empty: the listen address
: "${DNS_OUT_DIR:=/dns-out}"           # where the credentials ini is published (a mount)
: "${DNS_CREDENTIALS_NAME:=rfc2136.ini}"
: "${DNS_STATE_DIR:=/var/lib/dns-bed}" # named.conf, zone files, journals, the generated secret
: "${DNS_QUERYLOG:=0}"                 # 1: log every query too
: "${DNS_WILDCARD:=1}"                 # 0: no `*` A record (only the names DNS_RECORDS adds)
: "${DNS_RECORDS:=}"                   # more zone-file lines (relative names), separated by `|`

listen_host=${DNS_LISTEN%:*} listen_port=${DNS_LISTEN##*:}
listen_host=${listen_host#[} listen_host=${listen_host%]}
[[ "$listen_host" != "$DNS_LISTEN" && "$listen_port" =~ ^[0-9]+$ ]] || {
  echo "dns-entrypoint: DNS_LISTEN must be ADDRESS:PORT, got '$DNS_LISTEN'" >&2; exit 2; }
server_ip=${DNS_SERVER_IP:-$listen_host}
case "$server_ip" in 0.0.0.0) server_ip=127.0.0.1 ;; ::) server_ip=::1 ;; esac
read -r -a zones <<<"${DNS_ZONE//,/ }"
((${#zones[@]})) || { echo "dns-entrypoint: DNS_ZONE is empty" >&2; exit 2; }
for i in "${!zones[@]}"; do z=${zones[i],,}; zones[i]=${z%.}; done
secret_file=$DNS_STATE_DIR/tsig.secret

if [[ "${1:-}" == healthcheck ]]; then
  secret=$(cat "$secret_file")
  for zone in "${zones[@]}"; do
    dig +time=1 +tries=1 +norecurse -p "$listen_port" "@$server_ip" \
      -y "$DNS_TSIG_ALGORITHM:$DNS_KEY_NAME:$secret" SOA "$zone" \
      | grep -q 'status: NOERROR.*' || exit 1
  done
  exit 0
fi
if (($#)); then exec "$@"; fi # e.g. `docker run IMAGE bash`

mkdir -p "$DNS_STATE_DIR" "$DNS_OUT_DIR"
if [[ -n "$DNS_TSIG_SECRET" ]]; then
  secret=$DNS_TSIG_SECRET
elif [[ -s "$secret_file" ]]; then
  secret=$(cat "$secret_file") # a restarted container keeps its key
else
  secret=$(tsig-keygen -a "$DNS_TSIG_ALGORITHM" "$DNS_KEY_NAME" | sed -n 's/.*secret "\(.*\)";.*/\1/p')
  [[ -n "$secret" ]] || { echo "dns-entrypoint: tsig-keygen gave no secret" >&2; exit 1; }
fi
(umask 077 && printf '%s\n' "$secret" >"$secret_file")

match=$listen_host
[[ "$listen_host" == 0.0.0.0 || "$listen_host" == :: ]] && match=any # every address
if [[ "$listen_host" == *:* ]]; then
  listen="listen-on { none; }; listen-on-v6 port $listen_port { $match; };"
else
  listen="listen-on port $listen_port { $match; }; listen-on-v6 { none; };"
fi
querylog=no
[[ "$DNS_QUERYLOG" == 1 ]] && querylog=yes
{
  cat <<EOF
options {
  directory "$DNS_STATE_DIR";
  pid-file none;
  session-keyfile none;
  $listen
  recursion no;
  allow-query { any; };
  allow-transfer { none; };
  notify no;
  dnssec-validation no;
  minimal-responses yes;
  querylog $querylog;
};
controls { };
key "$DNS_KEY_NAME" { algorithm $DNS_TSIG_ALGORITHM; secret "$secret"; };
EOF
  for zone in "${zones[@]}"; do
    # Zones are rebuilt at every start: the old journal (.jnl) would no longer match them.
    rm -f "$DNS_STATE_DIR/$zone.zone" "$DNS_STATE_DIR/$zone.zone.jnl"
    cat >"$DNS_STATE_DIR/$zone.zone" <<EOF
\$TTL 60
@    IN SOA ns1.$zone. hostmaster.$zone. ( 1 60 60 3600 60 )
@    IN NS  ns1.$zone.
@    IN A   $DNS_ANSWER_A
ns1  IN A   $DNS_ANSWER_A
EOF
    [[ "$DNS_WILDCARD" == 1 ]] && echo "*    IN A   $DNS_ANSWER_A" >>"$DNS_STATE_DIR/$zone.zone"
    [[ -n "$DNS_RECORDS" ]] && tr '|' '\n' <<<"$DNS_RECORDS" >>"$DNS_STATE_DIR/$zone.zone"
    cat <<EOF
zone "$zone" {
  type primary;
  file "$DNS_STATE_DIR/$zone.zone";
  update-policy { grant "$DNS_KEY_NAME" zonesub TXT; };
};
EOF
  done
} >"$DNS_STATE_DIR/named.conf"
chmod 0640 "$DNS_STATE_DIR/named.conf" # it holds the secret
chown -R bind:bind "$DNS_STATE_DIR"
named-checkconf -z "$DNS_STATE_DIR/named.conf" >/dev/null

# The credentials certbot-dns-rfc2136 reads, published atomically (never half-written) as 0600.
tmp=$(mktemp "$DNS_OUT_DIR/.${DNS_CREDENTIALS_NAME}.XXXXXX")
cat >"$tmp" <<EOF
# certbot-dns-rfc2136 credentials for ${zones[*]} (written by the DNS test bed)
dns_rfc2136_server = $server_ip
dns_rfc2136_port = $listen_port
dns_rfc2136_name = $DNS_KEY_NAME
dns_rfc2136_secret = $secret
dns_rfc2136_algorithm = ${DNS_TSIG_ALGORITHM^^}
EOF
chmod 0600 "$tmp"
mv -f "$tmp" "$DNS_OUT_DIR/$DNS_CREDENTIALS_NAME"

echo "dns-entrypoint: authoritative for ${zones[*]} on $listen_host port $listen_port" \
  "(A $DNS_ANSWER_A for every name), TXT updates with TSIG key $DNS_KEY_NAME" \
  "($DNS_TSIG_ALGORITHM), credentials $DNS_OUT_DIR/$DNS_CREDENTIALS_NAME"
# named in the foreground, logging to stderr; it ends cleanly on SIGTERM (exit 0).
family=-4
[[ "$listen_host" == *:* ]] && family=-6
exec named -g -u bind "$family" -c "$DNS_STATE_DIR/named.conf"
