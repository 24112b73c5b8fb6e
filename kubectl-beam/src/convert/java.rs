//! Java-backed transforms: which ones a run serves itself, and the expansion service that serves them.
//!
//! Beam YAML expands a Java-backed transform (ReadFromPostgres, WriteToKafka, ...) by calling a Java expansion
//! service while the pipeline is built, and runs its stages in whatever environment that service names. Beam starts
//! the service from a jar with a Docker environment, which no TaskManager can run ("Cannot run program docker",
//! apache/beam#35527). So a run starts Beamstack's Java image (images/beam-java-transforms) in its role
//! `expansion-service` beside the launcher, as a native sidecar of the pod the launcher runs in (the JobManager's in
//! application mode, the driver's on Spark): it lives and dies with the job, needs no Service or RBAC, and always
//! matches the pipeline's Beam release. The service names an EXTERNAL environment at `localhost:50001`, where the
//! Java worker pool the webhook injects beside every TaskManager and executor runs the stages
//! (`beamstack.dev/java-transforms` asks for it).
//!
//! The image holds Beam's generic expansion service with JdbcIO and KafkaIO, so it serves the JDBC family
//! (ReadFromJdbc, ReadFromPostgres, ReadFromMySql, ReadFromSqlServer and their writers; their drivers are on the
//! classpath) and Kafka. Sql and the other Java-backed transforms need modules it does not hold: they are refused with
//! the reason, unless `--beam-services` names an expansion service for them.

use super::RunSettings;
use crate::pipeline::Pipeline;
use crate::pipeline::catalogue::Backing;
use beamstack::contract::JAVA_IMAGE_BEAM_RELEASES;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// The expansion service's port inside the launcher's pod (the job server takes 8097 to 8099).
pub const EXPANSION_SERVICE_PORT: u16 = 8091;

/// The transform types Beamstack's Java image serves: the expansion-service target Beam YAML asks for each.
const SERVED: &[(&str, &str)] = &[
    ("ReadFromJdbc", SCHEMAIO),
    ("WriteToJdbc", SCHEMAIO),
    ("ReadFromPostgres", SCHEMAIO),
    ("WriteToPostgres", SCHEMAIO),
    ("ReadFromMySql", SCHEMAIO),
    ("WriteToMySql", SCHEMAIO),
    ("ReadFromSqlServer", SCHEMAIO),
    ("WriteToSqlServer", SCHEMAIO),
    ("ReadFromKafka", IO),
    ("WriteToKafka", IO),
];
const SCHEMAIO: &str = "sdks:java:extensions:schemaio-expansion-service:shadowJar";
const IO: &str = "sdks:java:io:expansion-service:shadowJar";
const SQL: &str = "sdks:java:extensions:sql:expansion-service:shadowJar";

/// What a run does for its Java-backed transforms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JavaPlan {
    /// Transform types our expansion service serves (the webhook's `beamstack.dev/java-transforms`).
    pub served: BTreeSet<String>,
    /// Expansion-service target -> address, for Beam's `--beam_services`: the user's, then ours.
    pub services: Map<String, Value>,
}

impl JavaPlan {
    /// Whether the run starts our expansion service (and asks the webhook for the Java pool).
    pub fn runs_expansion_service(&self) -> bool {
        !self.served.is_empty()
    }
}

/// The plan for a pipeline: every Java-backed transform is served by `--beam-services` or by our image, or the run
/// is refused with what to do for each one that is not.
pub fn plan(pipeline: &Pipeline, settings: &RunSettings) -> Result<JavaPlan, String> {
    let mut plan = JavaPlan {
        services: settings.beam_services.clone(),
        ..JavaPlan::default()
    };
    let mut refused = Vec::new();
    for transform in pipeline.java_transforms() {
        let Backing::Java(targets) = &transform.backing else {
            continue;
        };
        let named_by_user = if targets.is_empty() {
            !settings.beam_services.is_empty()
        } else {
            targets.iter().any(|target| settings.beam_services.contains_key(target))
        };
        if named_by_user {
            continue;
        }
        match served_target(&transform.transform_type) {
            Some(target) => {
                plan.served.insert(transform.transform_type.clone());
                plan.services
                    .entry(target)
                    .or_insert_with(|| Value::from(format!("localhost:{EXPANSION_SERVICE_PORT}")));
            }
            None => refused.push(format!(
                "{} ({}): {}",
                transform.name,
                transform.transform_type,
                why_not_served(&transform.transform_type, targets)
            )),
        }
    }
    if !refused.is_empty() {
        return Err(format!(
            "{} uses Java-backed transforms that Beamstack's Java image does not serve (it serves the JDBC family, \
             Postgres, MySQL and SQL Server, and Kafka):\n  {}\nRun an expansion service for them in the cluster \
             (with an EXTERNAL environment its workers can reach) and pass it, for example --beam-services \
             '{{\"<target>\":\"expansion-service.beam:8097\"}}'.",
            pipeline.file.display(),
            refused.join("\n  ")
        ));
    }
    if plan.runs_expansion_service()
        && settings.java_image.is_none()
        && !JAVA_IMAGE_BEAM_RELEASES.contains(&settings.versions.beam.as_str())
    {
        return Err(format!(
            "{} uses Java-backed transforms ({}), which run from Beamstack's Java image; it is published for Beam {} \
             (the worker pool is built and tested against each release's jars), not for Beam {}. Run with \
             --beam-version {}, or give --java-image with an image of the expansion service and worker pool for \
             Beam {}.",
            pipeline.file.display(),
            plan.served.iter().cloned().collect::<Vec<_>>().join(", "),
            JAVA_IMAGE_BEAM_RELEASES.join(", "),
            settings.versions.beam,
            JAVA_IMAGE_BEAM_RELEASES.last().unwrap_or(&""),
            settings.versions.beam
        ));
    }
    if plan.runs_expansion_service() && settings.session.is_some() {
        return Err(format!(
            "{} uses Java-backed transforms ({}), which run in a Java worker pool beside each TaskManager: a session \
             cluster's TaskManagers have none. Run it in application mode (without --session), or pass \
             --beam-services with an expansion service whose environment your session cluster can run.",
            pipeline.file.display(),
            plan.served.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(plan)
}

/// The expansion-service target our image answers for a transform type.
fn served_target(transform_type: &str) -> Option<String> {
    let base = transform_type.split('-').next().unwrap_or(transform_type);
    SERVED
        .iter()
        .find(|(name, _)| *name == base)
        .map(|(_, target)| (*target).to_owned())
}

fn why_not_served(transform_type: &str, targets: &[String]) -> String {
    if targets.iter().any(|target| target == SQL) {
        "it needs Beam's SQL expansion service (beam-sdks-java-extensions-sql-expansion-service), which Beamstack's \
         Java image does not hold: the Maven repository the image is built from does not serve it. Use the Python \
         form where Beam has one (language: python)"
            .to_owned()
    } else if transform_type.contains("Oracle") {
        "Oracle's JDBC driver is not in Beamstack's Java image (its workers do not load driver_jars)".to_owned()
    } else {
        format!(
            "its module ({}) is not in Beamstack's Java image",
            if targets.is_empty() {
                "its provider's".to_owned()
            } else {
                targets.join(" or ")
            }
        )
    }
}

/// The launcher's command when the run serves Java-backed transforms: Beam YAML offers a Java provider only where
/// `which java` finds a program (ExternalJavaProvider.available, Beam 2.62 to 2.77), even when `--beam_services`
/// names a running service, which is all Beam then uses ("No available provider for type 'ReadFromPostgres'" in
/// the SDK image, which has no Java). The launcher gets a `java` on its PATH that only says so and fails, should
/// Beam ever run it.
pub fn with_java_placeholder(python_command: &[&str]) -> Vec<String> {
    let script = format!(
        "mkdir -p /tmp/beamstack-bin && printf '%s\n' '#!/bin/sh' \
         'echo \"kubectl beam: Java-backed transforms are expanded by the beam-expansion-service container \
         (--beam_services); this java only answers Beam YAML'\"'\"'s which-java check\" >&2' 'exit 1' \
         >/tmp/beamstack-bin/java && chmod +x /tmp/beamstack-bin/java && PATH=/tmp/beamstack-bin:$PATH exec {} \"$@\"",
        python_command.join(" ")
    );
    vec!["bash".into(), "-c".into(), script, "beam-yaml-launcher".into()]
}

/// Beamstack's Java image for the run's Beam release, unless `--java-image` names another.
pub fn java_image(settings: &RunSettings) -> String {
    settings.java_image.clone().unwrap_or_else(|| {
        beamstack::contract::java_image(beamstack::contract::JAVA_IMAGE_REPOSITORY, &settings.versions.beam)
    })
}

/// The expansion service as a native sidecar of the launcher's pod: started before the launcher (its startup probe
/// holds the launcher back until the port answers), running while the launcher expands the pipeline.
pub fn expansion_service_sidecar(settings: &RunSettings) -> Value {
    json!({
        "name": "beam-expansion-service",
        "image": java_image(settings),
        "restartPolicy": "Always",
        "args": ["expansion-service", EXPANSION_SERVICE_PORT.to_string()],
        "env": [{"name": "JAVA_OPTS", "value": "-Xmx384m -XX:+UseSerialGC"}],
        "ports": [{"name": "expansion", "containerPort": EXPANSION_SERVICE_PORT, "protocol": "TCP"}],
        "startupProbe": super::port_probe(EXPANSION_SERVICE_PORT),
        "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "512Mi"}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_serves_the_jdbc_family_and_kafka_by_their_beam_targets() {
        assert_eq!(served_target("ReadFromPostgres").as_deref(), Some(SCHEMAIO));
        assert_eq!(served_target("WriteToSqlServer").as_deref(), Some(SCHEMAIO));
        assert_eq!(served_target("ReadFromKafka").as_deref(), Some(IO));
        assert_eq!(served_target("Sql"), None);
        assert_eq!(served_target("ReadFromOracle"), None);
        assert_eq!(served_target("WriteToBigQuery"), None);
    }

    #[test]
    fn every_served_type_is_java_backed_by_that_target_in_beams_catalogue() {
        let catalogue = &crate::pipeline::catalogue::STANDARD_CATALOGUE;
        for (name, target) in SERVED {
            match catalogue.resolve(name, None) {
                Some((_, Backing::Java(targets))) => {
                    assert!(targets.iter().any(|t| t == target), "{name}: {targets:?}")
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_launcher_finds_a_java_that_only_explains_itself() {
        // The command as the launcher's container runs it, with `sh -c` checking what Beam's check sees in place of
        // Beam YAML's launcher, and the launcher's arguments passed through.
        let command = with_java_placeholder(&["sh", "-c", "'command -v java; java; echo \"status $? $0\"'"]);
        let output = std::process::Command::new(&command[0])
            .args(&command[1..])
            .arg("--yaml_pipeline_file=x")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stdout, "/tmp/beamstack-bin/java\nstatus 1 --yaml_pipeline_file=x\n",
            "{stderr}"
        );
        assert!(stderr.contains("which-java check"), "{stderr}");
    }

    #[test]
    fn sql_is_refused_with_the_reason() {
        let why = why_not_served("Sql", &[SQL.to_owned()]);
        assert!(why.contains("does not serve it"), "{why}");
        assert!(why_not_served("WriteToBigQuery", &["x:y".into()]).contains("x:y"));
    }
}
