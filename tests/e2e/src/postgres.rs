//! A real PostgreSQL for the scenarios that read and write a database: the server from Debian's postgresql-15 in a
//! pod on the node (the stand-in for the official `postgres:15` image, tests/node/images/postgres), behind a Service
//! of the same name, removed when dropped.

use crate::pipelines::wait_for;
use crate::{apply, kubectl};
use std::time::Duration;

/// The user, password and database the pod is made with.
pub const CREDENTIALS: &str = "beam";

pub struct Postgres {
    pub name: String,
    pub namespace: String,
}

impl Postgres {
    /// Starts the server in `namespace` as pod and Service `name`, and waits until it accepts queries.
    pub fn start(namespace: &str, name: &str) -> Self {
        let manifest = format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {namespace}, labels: {{app: {name}}}}}
spec:
  containers:
    - name: postgres
      image: docker.io/library/postgres:15
      env:
        - {{name: POSTGRES_USER, value: {CREDENTIALS}}}
        - {{name: POSTGRES_PASSWORD, value: {CREDENTIALS}}}
        - {{name: POSTGRES_DB, value: {CREDENTIALS}}}
      ports: [{{containerPort: 5432}}]
      readinessProbe:
        exec: {{command: [pg_isready, -h, 127.0.0.1, -U, {CREDENTIALS}, -d, {CREDENTIALS}]}}
        periodSeconds: 1
      volumeMounts: [{{name: data, mountPath: /var/lib/postgresql/data}}]
  volumes: [{{name: data, emptyDir: {{}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 5432, targetPort: 5432}}]
"#
        );
        let run = apply(&manifest);
        assert!(run.ok, "{}", run.stderr);
        let database = Self {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
        };
        wait_for("PostgreSQL to accept queries", Duration::from_secs(120), || {
            database.try_sql("SELECT 1").ok()
        });
        database
    }

    /// Runs SQL with psql in the pod; the rows as `a|b` lines.
    pub fn sql(&self, statements: &str) -> String {
        self.try_sql(statements)
            .unwrap_or_else(|error| panic!("psql {statements:?}: {error}"))
    }

    fn try_sql(&self, statements: &str) -> Result<String, String> {
        let run = kubectl(&[
            "exec",
            &self.name,
            "-n",
            &self.namespace,
            "--",
            "psql",
            "-v",
            "ON_ERROR_STOP=1",
            "-U",
            CREDENTIALS,
            "-d",
            CREDENTIALS,
            "-At",
            "-c",
            statements,
        ]);
        if run.ok { Ok(run.stdout) } else { Err(run.stderr) }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        for kind in ["pod", "service"] {
            kubectl(&[
                "delete",
                kind,
                &self.name,
                "-n",
                &self.namespace,
                "--ignore-not-found",
                "--wait=false",
            ]);
        }
    }
}
