#!/usr/bin/env bash
# Start the machine's PostgreSQL cluster (Debian's postgresql-common) and make sure the test role exists:
# `forcecast` / `forcecast` on 127.0.0.1:5432, allowed to create databases (each test session makes its own).
set -euo pipefail
sudo=""
as_postgres=(runuser -u postgres --)
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; as_postgres=(sudo -u postgres); fi
version=$(pg_lsclusters --no-header | awk 'NR==1 {print $1}')
cluster=$(pg_lsclusters --no-header | awk 'NR==1 {print $2}')
if [ -z "$version" ]; then
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  cluster=main
  $sudo pg_createcluster "$version" "$cluster"
fi
if ! pg_lsclusters --no-header | awk -v c="$cluster" '$2 == c {print $4}' | grep -q online; then
  $sudo pg_ctlcluster "$version" "$cluster" start
fi
for _ in $(seq 1 30); do
  if "${as_postgres[@]}" psql -qAtc "select 1" >/dev/null 2>&1; then break; fi
  sleep 1
done
"${as_postgres[@]}" psql -v ON_ERROR_STOP=1 -qAt <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'forcecast') THEN
    CREATE ROLE forcecast LOGIN PASSWORD 'forcecast' CREATEDB;
  END IF;
END
$$;
SQL
echo "ci: PostgreSQL $version/$cluster is up (role forcecast)"
