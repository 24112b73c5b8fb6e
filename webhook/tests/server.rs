//! The server over real sockets: TLS handshake, certificate rotation by symlink swap under load, client-CA
//! refusal, the bad-input table, and SIGTERM with a graceful drain (on the real `beam-webhook` binary).

mod common;
#[path = "common/tls_client.rs"]
mod tls_client;

use beamstack::admission::Admission;
use beamstack::config::Config;
use common::{fixture, patch_of, review};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tls_client::{Client, der_of};
use webhook::certs::{self, CertBundle, ServingCertRequest};
use webhook::server::{ServeOptions, Server};

fn bundle() -> CertBundle {
    certs::generate(&ServingCertRequest {
        service: "beam-webhook".into(),
        namespace: "beamstack".into(),
        extra_names: vec!["localhost".into(), "127.0.0.1".into()],
        valid_for: time::Duration::days(1),
    })
    .unwrap()
}

/// Writes a bundle the way the kubelet projects a Secret: a timestamped folder, a `..data` symlink to it, and
/// `tls.crt`/`tls.key` symlinks through `..data`. Swapping `..data` is one atomic rename.
fn project_secret(dir: &Path, generation: u32, bundle: &CertBundle) {
    let folder = dir.join(format!("..2026_11_21_{generation:04}"));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("tls.crt"), &bundle.cert).unwrap();
    std::fs::write(folder.join("tls.key"), &bundle.key).unwrap();
    let staging = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&staging);
    std::os::unix::fs::symlink(folder.file_name().unwrap(), &staging).unwrap();
    std::fs::rename(&staging, dir.join("..data")).unwrap();
    for file in ["tls.crt", "tls.key"] {
        let link = dir.join(file);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(file), &link).unwrap();
        }
    }
}

fn options(dir: &Path, client_ca: Option<PathBuf>) -> ServeOptions {
    ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        tls_cert: dir.join("tls.crt"),
        tls_key: dir.join("tls.key"),
        client_ca,
        reload_interval: Duration::from_millis(50),
        drain_timeout: Duration::from_secs(5),
        policy_reload_interval: Duration::from_millis(50),
        noop_patch_bytes: None,
    }
}

async fn start(dir: &Path, bundle: &CertBundle, client_ca: Option<PathBuf>) -> Server {
    project_secret(dir, 1, bundle);
    Server::start(&options(dir, client_ca), Admission::new(Config::default()), None, None)
        .await
        .unwrap()
}

#[tokio::test]
async fn runner_crs_come_back_patched_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle();
    let server = start(dir.path(), &bundle, None).await;
    let client = Client::new(&[&bundle.ca_cert], None);

    let (status, body) = client
        .post_json(
            server.admission_address,
            "/mutate",
            &review("CREATE", &fixture("flink-pipeline"), None),
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    let patch = patch_of(&body["response"]);
    let paths: Vec<String> = patch.0.iter().map(|op| op.path().to_string()).collect();
    for expected in [
        "/spec/serviceAccount",
        "/spec/taskManager/resource/memory",
        "/spec/taskManager/podTemplate",
    ] {
        assert!(paths.iter().any(|path| path == expected), "{expected} not in {paths:?}");
    }

    let (status, body) = client
        .post_json(
            server.admission_address,
            "/mutate",
            &review("CREATE", &fixture("spark-pipeline"), None),
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    let mut object = fixture("spark-pipeline");
    json_patch::patch(&mut object, &patch_of(&body["response"])).unwrap();
    assert_eq!(
        object["spec"]["executor"]["sidecars"][0]["image"],
        "apache/beam_python3.11_sdk:2.77.0"
    );
    assert_eq!(object["spec"]["executor"]["instances"], 1);

    let (status, body) = client
        .post_json(server.admission_address, "/validate", &review("CREATE", &object, None))
        .await
        .unwrap();
    assert_eq!((status, &body["response"]["allowed"]), (200, &json!(true)));

    // TLS 1.2 clients and HTTP/2 (which API servers negotiate by ALPN) are served too.
    let body = serde_json::to_vec(&review("CREATE", &fixture("flink-plain"), None)).unwrap();
    let tls12 = Client::with_versions(&[&bundle.ca_cert], None, &[&rustls::version::TLS12], &[]);
    assert_eq!(
        tls12
            .request(server.admission_address, "POST", "/mutate", body.clone())
            .await
            .unwrap()
            .status,
        200
    );
    let h2 = Client::with_versions(&[&bundle.ca_cert], None, &[&rustls::version::TLS13], &[b"h2"]);
    let (status, version) = h2.request_h2(server.admission_address, "/mutate", body).await.unwrap();
    assert_eq!((status, version.as_str()), (200, "Some(TLSv1_3)"));

    // The admin port answers in the clear and counts what happened.
    let admin = format!("http://{}", server.admin_address);
    let metrics = http_get(&format!("{admin}/metrics")).await;
    assert!(metrics.contains("beamstack_webhook_admissions_total{endpoint=\"mutate\",kind=\"FlinkDeployment\",operation=\"CREATE\",outcome=\"patched\"} 3"), "{metrics}");
    assert!(
        metrics.contains("beamstack_webhook_patches_total{kind=\"SparkApplication\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("beamstack_webhook_admission_duration_seconds_bucket"),
        "{metrics}"
    );
    // Every admission's handling time, its metrics and its answer's encoding included: four to /mutate.
    assert!(
        metrics.contains("beamstack_webhook_handling_duration_seconds_count{endpoint=\"mutate\"} 4"),
        "{metrics}"
    );
    assert!(http_get(&format!("{admin}/readyz")).await.contains("\"ready\":true"));
    assert_eq!(http_get(&format!("{admin}/healthz")).await, "ok\n");
    server.shutdown().await;
}

/// `--noop-patch-bytes` (the API-server benchmark's no-op webhook) answers through the same server: allowed, on
/// /mutate a patch of the asked length that leaves the object as it was, bad bodies refused as always.
#[tokio::test]
async fn the_noop_admission_allows_with_a_patch_that_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle();
    project_secret(dir.path(), 1, &bundle);
    let options = ServeOptions {
        noop_patch_bytes: Some(700),
        ..options(dir.path(), None)
    };
    let server = Server::start(&options, Admission::new(Config::default()), None, None)
        .await
        .unwrap();
    let client = Client::new(&[&bundle.ca_cert], None);
    let object = fixture("flink-pipeline");
    let (status, body) = client
        .post_json(server.admission_address, "/mutate", &review("CREATE", &object, None))
        .await
        .unwrap();
    assert_eq!((status, &body["response"]["allowed"]), (200, &json!(true)));
    let patch = patch_of(&body["response"]);
    assert_eq!(serde_json::to_string(&patch).unwrap().len(), 700);
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).unwrap();
    assert_eq!(patched, object);
    let (status, body) = client
        .post_json(server.admission_address, "/validate", &review("CREATE", &object, None))
        .await
        .unwrap();
    assert_eq!((status, &body["response"]["allowed"]), (200, &json!(true)));
    assert_eq!(body["response"]["patch"], Value::Null);
    let refused = client
        .request(server.admission_address, "POST", "/mutate", b"{".to_vec())
        .await
        .unwrap();
    assert_eq!(refused.status, 400);
    server.shutdown().await;
}

/// GET over plain HTTP with a raw socket: the admin port needs nothing more.
async fn http_get(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    stream
        .write_all(format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    // Bodies of our small admin answers come chunked or whole; strip chunk framing if present.
    if response.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if size == 0 {
                break;
            }
            out.push_str(&tail[..size]);
            rest = &tail[size + 2..];
        }
        out
    } else {
        body.to_owned()
    }
}

#[tokio::test]
async fn certificate_rotation_by_symlink_swap_loses_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let first = bundle();
    let second = bundle(); // a new CA too: the harder case, as after an expired CA
    let server = start(dir.path(), &first, None).await;
    // During a rotation the API server's caBundle holds both CAs.
    let client = Client::new(&[&first.ca_cert, &second.ca_cert], None);
    let address = server.admission_address;
    let body = review("CREATE", &fixture("flink-plain"), None);

    let flow = tokio::spawn({
        let body = body.clone();
        async move {
            let mut served = Vec::new();
            for _ in 0..150 {
                let reply = client
                    .request(address, "POST", "/mutate", serde_json::to_vec(&body).unwrap())
                    .await;
                served.push(reply.map(|reply| (reply.status, reply.server_cert)));
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
            served
        }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    project_secret(dir.path(), 2, &second);
    let served = flow.await.unwrap();

    let failures: Vec<_> = served.iter().filter(|reply| !matches!(reply, Ok((200, _)))).collect();
    assert!(failures.is_empty(), "requests failed during rotation: {failures:?}");
    let (old_der, new_der) = (der_of(&first.cert), der_of(&second.cert));
    let certs: Vec<&Vec<u8>> = served.iter().map(|reply| &reply.as_ref().unwrap().1).collect();
    assert_eq!(
        certs.first().unwrap(),
        &&old_der,
        "the first requests see the first certificate"
    );
    assert_eq!(
        certs.last().unwrap(),
        &&new_der,
        "the last requests see the rotated certificate; {}",
        server.state.metrics.encode()
    );
    let switch = certs.iter().position(|cert| **cert == new_der).unwrap();
    assert!(
        certs[switch..].iter().all(|cert| **cert == new_der),
        "once rotated, the old certificate never returns"
    );

    // A broken pair (key of another certificate) is refused; the current certificate stays.
    let mut mixed = bundle();
    mixed.key = first.key.clone();
    project_secret(dir.path(), 3, &mixed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = Client::new(&[&second.ca_cert], None);
    let reply = client
        .request(address, "POST", "/mutate", serde_json::to_vec(&body).unwrap())
        .await
        .unwrap();
    assert_eq!((reply.status, reply.server_cert), (200, new_der));
    let metrics = server.state.metrics.encode();
    assert!(
        metrics.contains("beamstack_webhook_certificate_reloads_total{result=\"loaded\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("beamstack_webhook_certificate_reloads_total{result=\"rejected\"} 1"),
        "{metrics}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn client_certificates_are_required_when_a_client_ca_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let serving = bundle();
    let api_server = certs::generate_client("kube-apiserver").unwrap();
    let stranger = certs::generate_client("someone-else").unwrap();
    let ca_path = dir.path().join("client-ca.crt");
    std::fs::write(&ca_path, &api_server.ca_cert).unwrap();
    let secret = dir.path().join("secret");
    std::fs::create_dir(&secret).unwrap();
    let server = start(&secret, &serving, Some(ca_path)).await;
    let body = serde_json::to_vec(&review("CREATE", &fixture("flink-plain"), None)).unwrap();

    let anonymous = Client::new(&[&serving.ca_cert], None);
    assert!(
        anonymous
            .request(server.admission_address, "POST", "/mutate", body.clone())
            .await
            .is_err()
    );
    let wrong = Client::new(&[&serving.ca_cert], Some((&stranger.cert, &stranger.key)));
    assert!(
        wrong
            .request(server.admission_address, "POST", "/mutate", body.clone())
            .await
            .is_err()
    );
    let trusted = Client::new(&[&serving.ca_cert], Some((&api_server.cert, &api_server.key)));
    assert_eq!(
        trusted
            .request(server.admission_address, "POST", "/mutate", body)
            .await
            .unwrap()
            .status,
        200
    );
    server.shutdown().await;
}

/// A review whose object nests `depth` levels deep: `{"a":{"a":…}}`.
fn nested(depth: usize) -> Vec<u8> {
    let review = serde_json::to_string(&review("CREATE", &fixture("flink-plain"), None)).unwrap();
    let deep = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let at = review.find(r#""object":"#).unwrap() + r#""object":"#.len();
    let end = review.find(r#","oldObject""#).unwrap();
    format!("{}{}{}", &review[..at], deep, &review[end..]).into_bytes()
}

/// (case, method, path, body, HTTP status, the answer's `error`, or the start of a denial's message or one of its
/// listed violations, or `allowed`)
type BadInput = (&'static str, &'static str, &'static str, Vec<u8>, u16, &'static str);

/// The hostile half of the matrix: broken JSON in the ways parsers disagree on, wrong types where the review's own
/// fields are read, and wrong types, huge values and odd shapes inside the object. The review's own fields are
/// refused with 400 naming the field; inside the object the webhook judges what its rules read (naming the field)
/// and lets the rest through to the API server's schema validation, with a mutation patch that still applies.
fn hostile_inputs(good: &Value) -> Vec<BadInput> {
    let text = serde_json::to_string(good).unwrap();
    let edited = |edit: &dyn Fn(&mut Value)| {
        let mut value = good.clone();
        edit(&mut value);
        serde_json::to_vec(&value).unwrap()
    };
    let in_object = |pointer: &str, new: Value| {
        edited(&|review: &mut Value| {
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            let object = &mut review["request"]["object"];
            let mut at = object;
            for step in parent.split('/').filter(|step| !step.is_empty()) {
                if at.get(step).is_none() {
                    at[step] = json!({});
                }
                at = &mut at[step];
            }
            at[key] = new.clone();
        })
    };
    let in_request = |key: &'static str, new: Value| edited(&|review: &mut Value| review["request"][key] = new.clone());
    let spark = |pointer: &str, new: Value| {
        let mut object = fixture("spark-plain");
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        object.pointer_mut(parent).unwrap()[key] = new;
        serde_json::to_vec(&review("CREATE", &object, None)).unwrap()
    };
    let uid = r#""uid":"705ab4f5-6393-11e8-b7cc-42010a800002""#;
    assert!(text.contains(uid));
    vec![
        (
            "trailing garbage",
            "POST",
            "/mutate",
            format!("{text}}}garbage").into_bytes(),
            400,
            "malformed-json",
        ),
        (
            "NaN literal",
            "POST",
            "/mutate",
            text.replacen(uid, r#""uid":NaN"#, 1).into_bytes(),
            400,
            "malformed-json",
        ),
        (
            "UTF-8 byte order mark",
            "POST",
            "/mutate",
            [b"\xef\xbb\xbf".as_slice(), text.as_bytes()].concat(),
            400,
            "malformed-json",
        ),
        (
            "invalid UTF-8 in a string",
            "POST",
            "/mutate",
            text.replacen(uid, "\"uid\":\"\u{1}\"", 1)
                .into_bytes()
                .into_iter()
                .map(|b| if b == 1 { 0xff } else { b })
                .collect(),
            400,
            "malformed-json",
        ),
        (
            "lone surrogate escape",
            "POST",
            "/mutate",
            text.replacen(uid, r#""uid":"\ud800""#, 1).into_bytes(),
            400,
            "malformed-json",
        ),
        (
            "number beyond f64",
            "POST",
            "/validate",
            text.replacen(r#""spec":{"#, r#""spec":{"x":1e400,"#, 1).into_bytes(),
            400,
            "malformed-json",
        ),
        (
            "duplicate uid",
            "POST",
            "/mutate",
            text.replacen(uid, &format!("{uid},{uid}"), 1).into_bytes(),
            400,
            "invalid-field",
        ),
        (
            "operation PATCH",
            "POST",
            "/mutate",
            in_request("operation", json!("PATCH")),
            400,
            "invalid-field",
        ),
        (
            "dryRun a string",
            "POST",
            "/mutate",
            in_request("dryRun", json!("yes")),
            400,
            "invalid-field",
        ),
        (
            "userInfo a string",
            "POST",
            "/validate",
            in_request("userInfo", json!("root")),
            400,
            "invalid-field",
        ),
        (
            "request.kind a string",
            "POST",
            "/validate",
            in_request("kind", json!("FlinkDeployment")),
            400,
            "invalid-field",
        ),
        (
            "namespace a number",
            "POST",
            "/mutate",
            in_request("namespace", json!(7)),
            400,
            "invalid-field",
        ),
        (
            "uid an object",
            "POST",
            "/mutate",
            in_request("uid", json!({"a": 1})),
            400,
            "invalid-field",
        ),
        // The API server's decoder keeps the last of duplicate keys; so do we, so both judge the same object.
        (
            "duplicate spec key, last wins",
            "POST",
            "/validate",
            text.replacen(r#""spec":{"#, r#""spec":{"flinkVersion":"v0_1"},"spec":{"#, 1)
                .into_bytes(),
            200,
            "spec.serviceAccount: required",
        ),
        (
            "parallelism a string",
            "POST",
            "/validate",
            in_object("/spec/job/parallelism", json!("two")),
            200,
            "spec.job.parallelism: must be a whole number",
        ),
        (
            "parallelism a fraction",
            "POST",
            "/validate",
            in_object("/spec/job/parallelism", json!(1.5)),
            200,
            "spec.job.parallelism: must be a whole number",
        ),
        (
            "parallelism past int32",
            "POST",
            "/validate",
            in_object("/spec/job/parallelism", json!(1e30)),
            200,
            "spec.job.parallelism: must be a whole number",
        ),
        (
            "parallelism negative",
            "POST",
            "/validate",
            in_object("/spec/job/parallelism", json!(-3)),
            200,
            "spec.job.parallelism: must be a whole number",
        ),
        (
            "replicas a string",
            "POST",
            "/validate",
            in_object("/spec/taskManager/replicas", json!("two")),
            200,
            "spec.taskManager.replicas: must be a whole number",
        ),
        (
            "cpu a string",
            "POST",
            "/validate",
            in_object("/spec/taskManager/resource/cpu", json!("lots")),
            200,
            "spec.taskManager.resource.cpu: must be a positive number",
        ),
        (
            "memory a number",
            "POST",
            "/validate",
            in_object("/spec/taskManager/resource/memory", json!(2048)),
            200,
            "spec.taskManager.resource.memory: must be a string",
        ),
        (
            "flinkVersion a number",
            "POST",
            "/validate",
            in_object("/spec/flinkVersion", json!(1.17)),
            200,
            "spec.flinkVersion: `1.17` is not a flinkVersion",
        ),
        (
            "a 1 MB name",
            "POST",
            "/validate",
            in_object("/metadata/name", json!("a".repeat(1_000_000))),
            200,
            "metadata.name",
        ),
        (
            "spec null",
            "POST",
            "/validate",
            in_object("/spec", Value::Null),
            200,
            "spec.flinkVersion: required",
        ),
        (
            "spec a list",
            "POST",
            "/validate",
            in_object("/spec", json!([1, 2])),
            200,
            "spec.flinkVersion: required",
        ),
        (
            "Spark instances a string",
            "POST",
            "/validate",
            spark("/spec/executor/instances", json!("many")),
            200,
            "spec.executor.instances: must be a whole number",
        ),
        (
            "Spark cores a string",
            "POST",
            "/validate",
            spark("/spec/driver/cores", json!("one")),
            200,
            "spec.driver.cores: must be a whole number",
        ),
        (
            "spec a list, mutated",
            "POST",
            "/mutate",
            in_object("/spec", json!([1, 2])),
            200,
            "allowed",
        ),
        (
            "flinkConfiguration a list",
            "POST",
            "/mutate",
            in_object("/spec/flinkConfiguration", json!(["a"])),
            200,
            "allowed",
        ),
        (
            "containers an object",
            "POST",
            "/mutate",
            in_object("/spec/podTemplate/spec/containers", json!({"name": "x"})),
            200,
            "allowed",
        ),
        (
            "tolerations an object",
            "POST",
            "/mutate",
            in_object("/spec/podTemplate/spec/tolerations", json!({"key": "x"})),
            200,
            "allowed",
        ),
        (
            "nodeSelector a list",
            "POST",
            "/mutate",
            in_object("/spec/podTemplate/spec/nodeSelector", json!(["a"])),
            200,
            "allowed",
        ),
        (
            "taskManager a string",
            "POST",
            "/mutate",
            in_object("/spec/taskManager", json!("big")),
            200,
            "allowed",
        ),
        (
            "labels a list",
            "POST",
            "/mutate",
            in_object("/metadata/labels", json!(["a"])),
            200,
            "allowed",
        ),
        (
            "annotations a string",
            "POST",
            "/mutate",
            in_object("/metadata/annotations", json!("a")),
            200,
            "allowed",
        ),
        (
            "metadata a string",
            "POST",
            "/mutate",
            in_object("/metadata", json!("x")),
            200,
            "allowed",
        ),
        (
            "a 1 MB annotation",
            "POST",
            "/mutate",
            in_object("/metadata/annotations/note", json!("x".repeat(1_000_000))),
            200,
            "allowed",
        ),
        (
            "UPDATE without oldObject",
            "POST",
            "/mutate",
            edited(&|review: &mut Value| review["request"]["operation"] = json!("UPDATE")),
            200,
            "allowed",
        ),
        (
            "oldObject a string",
            "POST",
            "/mutate",
            edited(&|review: &mut Value| {
                review["request"]["operation"] = json!("UPDATE");
                review["request"]["oldObject"] = json!("x");
            }),
            200,
            "allowed",
        ),
        (
            "DELETE with no object",
            "POST",
            "/validate",
            edited(&|review: &mut Value| {
                review["request"]["operation"] = json!("DELETE");
                review["request"]["object"] = Value::Null;
            }),
            200,
            "allowed",
        ),
    ]
}

#[tokio::test]
async fn bad_input_gets_its_documented_answer_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle();
    let server = start(dir.path(), &bundle, None).await;
    let client = Client::new(&[&bundle.ca_cert], None);
    let address = server.admission_address;
    let good = review("CREATE", &fixture("flink-plain"), None);
    let good_bytes = serde_json::to_vec(&good).unwrap();

    let with = |edit: fn(&mut Value)| {
        let mut value = good.clone();
        edit(&mut value);
        serde_json::to_vec(&value).unwrap()
    };
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
    // (case, method, path, body, status, the answer's `error` or a fragment of it)
    let mut table: Vec<BadInput> = vec![
        (
            "truncated JSON",
            "POST",
            "/mutate",
            good_bytes[..good_bytes.len() / 2].to_vec(),
            400,
            "malformed-json",
        ),
        ("empty body", "POST", "/validate", Vec::new(), 400, "malformed-json"),
        (
            "not JSON at all",
            "POST",
            "/mutate",
            b"<xml/>".to_vec(),
            400,
            "malformed-json",
        ),
        (
            "wrong apiVersion",
            "POST",
            "/mutate",
            with(|v| v["apiVersion"] = json!("admission.k8s.io/v1beta1")),
            400,
            "wrong-api-version",
        ),
        (
            "wrong kind",
            "POST",
            "/mutate",
            with(|v| v["kind"] = json!("Pod")),
            400,
            "not-admission-review",
        ),
        (
            "missing request",
            "POST",
            "/mutate",
            with(|v| {
                v.as_object_mut().unwrap().remove("request");
            }),
            400,
            "missing-request",
        ),
        (
            "empty uid",
            "POST",
            "/mutate",
            with(|v| v["request"]["uid"] = json!("")),
            400,
            "missing-uid",
        ),
        (
            "operation of the wrong type",
            "POST",
            "/mutate",
            with(|v| v["request"]["operation"] = json!(5)),
            400,
            "invalid-field",
        ),
        (
            "a JSON array",
            "POST",
            "/mutate",
            b"[1,2,3]".to_vec(),
            400,
            "not-admission-review",
        ),
        ("deep nesting", "POST", "/validate", nested(10_000), 400, "too-deep"),
        (
            "nesting within the limit",
            "POST",
            "/validate",
            nested(100),
            200,
            "FlinkDeployment \"basic-example\" has 4 problems",
        ),
        (
            "missing object",
            "POST",
            "/mutate",
            with(|v| {
                v["request"].as_object_mut().unwrap().remove("object");
            }),
            200,
            "request.object: required for CREATE",
        ),
        (
            "object not an object",
            "POST",
            "/validate",
            with(|v| v["request"]["object"] = json!("FlinkDeployment")),
            200,
            "request.object: must be a JSON object",
        ),
        (
            "unknown kind",
            "POST",
            "/mutate",
            serde_json::to_vec(&review("CREATE", &pod, None)).unwrap(),
            200,
            "allowed",
        ),
        (
            "4 MiB body",
            "POST",
            "/mutate",
            vec![b' '; 4 * 1024 * 1024],
            413,
            "too-large",
        ),
        ("wrong path", "POST", "/admit", good_bytes.clone(), 404, "not-found"),
        (
            "wrong method",
            "GET",
            "/validate",
            Vec::new(),
            405,
            "method-not-allowed",
        ),
    ];
    table.extend(hostile_inputs(&good));
    assert!(table.len() >= 40, "the matrix has {} cases", table.len());
    for (case, method, path, body, status, expected) in table {
        let sent: Option<Value> = serde_json::from_slice(&body).ok();
        let reply = client
            .request(address, method, path, body)
            .await
            .unwrap_or_else(|error| panic!("{case}: {error}"));
        let text = String::from_utf8_lossy(&reply.body).to_string();
        assert_eq!(reply.status, status, "{case}: {text}");
        if status == 200 {
            let answer: Value = serde_json::from_str(&text).unwrap();
            if expected == "allowed" {
                assert_eq!(answer["response"]["allowed"], true, "{case}");
                // A patch for a malformed object must still apply: the API server would otherwise fail the request
                // with an internal error instead of its own schema message.
                let mut object = sent
                    .as_ref()
                    .map_or(Value::Null, |review| review["request"]["object"].clone());
                json_patch::patch(&mut object, &patch_of(&answer["response"]))
                    .unwrap_or_else(|error| panic!("{case}: the patch does not apply: {error}"));
            } else {
                assert_eq!(answer["response"]["allowed"], false, "{case}");
                let message = answer["response"]["status"]["message"].as_str().unwrap();
                assert!(
                    message.starts_with(expected) || message.contains(&format!("- {expected}")),
                    "{case}: {text}"
                );
            }
        } else {
            let answer: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{case}: not JSON: {text}"));
            assert_eq!(answer["error"], expected, "{case}: {text}");
            assert!(
                answer["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{case}: a message says what was wrong"
            );
        }
        // After every bad request, a good one still succeeds.
        let after = client
            .request(address, "POST", "/mutate", good_bytes.clone())
            .await
            .unwrap();
        assert_eq!(after.status, 200, "server stopped serving after {case}");
    }
    let reason = |text: &str| server.state.metrics.encode().contains(text);
    assert!(reason("beamstack_webhook_bad_requests_total{reason=\"too-large\"} 1"));

    // Plain HTTP on the TLS port gets a plain answer, as Go's servers give, and the server carries on.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut plain = tokio::net::TcpStream::connect(address).await.unwrap();
    plain
        .write_all(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        .await
        .unwrap();
    let mut answer = String::new();
    plain.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.0 400 Bad Request"), "{answer}");
    assert!(answer.contains("HTTPS server"), "{answer}");
    assert_eq!(
        client
            .request(address, "POST", "/mutate", good_bytes)
            .await
            .unwrap()
            .status,
        200
    );
    server.shutdown().await;
}

/// Slow clients (slowloris): connections that never finish their headers, or their body, or their TLS handshake,
/// hold nothing for long. While they hang, well-behaved requests are answered; a client stuck in its headers is
/// disconnected after the header timeout (10 s), one stuck in its body is answered 408, and a silent TCP
/// connection is closed after the handshake timeout (10 s).
#[tokio::test]
async fn slow_clients_are_cut_off_and_others_are_served_meanwhile() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle();
    let server = start(dir.path(), &bundle, None).await;
    let client = Client::new(&[&bundle.ca_cert], None);
    let address = server.admission_address;
    let good = serde_json::to_vec(&review("CREATE", &fixture("flink-plain"), None)).unwrap();

    let mut stuck_in_headers = Vec::new();
    let mut stuck_in_body = Vec::new();
    let mut silent = Vec::new();
    for _ in 0..40 {
        let mut tls = client.connect(address).await.unwrap();
        tls.write_all(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Le")
            .await
            .unwrap();
        stuck_in_headers.push(tls);
        let mut tls = client.connect(address).await.unwrap();
        tls.write_all(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{\"apiVersion\"")
            .await
            .unwrap();
        stuck_in_body.push(tls);
        silent.push(tokio::net::TcpStream::connect(address).await.unwrap());
    }
    let started = std::time::Instant::now();
    for _ in 0..20 {
        let reply = client.request(address, "POST", "/mutate", good.clone()).await.unwrap();
        assert_eq!(reply.status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "20 requests took {:?} beside 120 stalled connections",
        started.elapsed()
    );

    // Past both timeouts, every stalled connection has been dealt with.
    tokio::time::sleep(webhook::server::REQUEST_TIMEOUT + Duration::from_secs(1)).await;
    for mut tls in stuck_in_headers {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(1), tls.read_to_end(&mut rest)).await;
        assert!(
            matches!(read, Ok(Ok(_)) | Ok(Err(_))),
            "a client stuck in its headers is still connected"
        );
    }
    for mut tls in stuck_in_body {
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(1), tls.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("\"timeout\""), "{answer}");
    }
    for mut tcp in silent {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(1), tcp.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(0))), "a silent connection is still open");
    }
    assert!(
        server
            .state
            .metrics
            .encode()
            .contains("beamstack_webhook_bad_requests_total{reason=\"timeout\"} 40")
    );
    let reply = client.request(address, "POST", "/mutate", good).await.unwrap();
    assert_eq!(reply.status, 200);
    server.shutdown().await;
}

#[test]
fn help_documents_every_flag() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_beam-webhook"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--listen",
        "--tls-cert",
        "--tls-key",
        "--client-ca",
        "--tls-reload-interval",
        "--admin-listen",
        "--config",
        "--drain-timeout",
        "--log-format",
        "--log-level",
        "BEAM_WEBHOOK_LISTEN",
        "BEAM_WEBHOOK_CONFIG",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}:\n{help}");
    }
}

#[test]
fn a_bad_config_file_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "spark:\n  driver:\n    memory: 2Gi\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_beam-webhook"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "--tls-cert",
            "/nonexistent",
            "--tls-key",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("spark.driver.memory"), "{stderr}");
}

/// SIGTERM: the binary stops accepting, finishes what is in flight, and exits 0.
#[tokio::test]
async fn sigterm_drains_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle();
    bundle.write_to(dir.path()).unwrap();
    let port = free_port();
    let admin_port = free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_beam-webhook"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin_port}"),
        ])
        .args([
            "--tls-cert",
            dir.path().join("tls.crt").to_str().unwrap(),
            "--tls-key",
            dir.path().join("tls.key").to_str().unwrap(),
        ])
        .args(["--log-format", "json"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let client = Client::new(&[&bundle.ca_cert], None);
    let address = format!("127.0.0.1:{port}").parse().unwrap();
    let body = serde_json::to_vec(&review("CREATE", &fixture("flink-pipeline"), None)).unwrap();
    let mut up = false;
    for _ in 0..100 {
        if client.request(address, "POST", "/mutate", body.clone()).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "beam-webhook did not come up");
    // Requests in flight while the signal arrives all complete.
    let load = tokio::spawn({
        let body = body.clone();
        async move {
            let mut results = Vec::new();
            for _ in 0..20 {
                results.push(
                    client
                        .request(address, "POST", "/mutate", body.clone())
                        .await
                        .map(|r| r.status),
                );
            }
            results
        }
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits within the drain timeout")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    let results = load.await.unwrap();
    // Requests sent before the signal succeed; those after it are refused at connect, never answered with an error.
    let answered: Vec<_> = results.iter().filter_map(|result| result.as_ref().ok()).collect();
    assert!(answered.iter().all(|status| **status == 200), "{results:?}");
    let mut stderr = String::new();
    use tokio::io::AsyncReadExt;
    child.stderr.take().unwrap().read_to_string(&mut stderr).await.unwrap();
    assert!(stderr.contains("shutdown requested"), "{stderr}");
    assert!(stderr.contains("beam-webhook stopped"), "{stderr}");
    let admission_line = stderr
        .lines()
        .find(|line| line.contains("\"message\":\"admission\""))
        .expect("one log line per admission");
    let line: Value = serde_json::from_str(admission_line).unwrap();
    for field in [
        "uid",
        "kind",
        "namespace",
        "name",
        "operation",
        "allowed",
        "patched",
        "duration_us",
    ] {
        assert!(line.get(field).is_some(), "log line lacks {field}: {admission_line}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn policy_folder_changes_apply_live_and_refused_ones_show_in_readyz() {
    use beamstack::policy::engine::Engine;
    use beamstack::policy::load::DirectorySource;
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    let policy = |expression: &str| {
        format!(
            "apiVersion: beamstack.dev/v1alpha1\nkind: RunnerPolicy\nmetadata: {{name: max-parallelism}}\nspec:\n  validations:\n    - expression: \"{expression}\"\n      message: too parallel\n"
        )
    };
    std::fs::write(policies.join("p.yaml"), policy("object.spec.job.parallelism <= 100")).unwrap();
    let engine = Engine::standard();
    let source = DirectorySource::new(&policies);
    source.poll(&engine);
    let bundle = bundle();
    project_secret(dir.path(), 1, &bundle);
    let admission = Admission::with_engine(Config::default(), Arc::clone(&engine));
    let server = Server::start(&options(dir.path(), None), admission, Some(source), None)
        .await
        .unwrap();
    let client = Client::new(&[&bundle.ca_cert], None);
    let object = common::mutated(&common::state(Config::default()), "CREATE", &fixture("flink-plain"))
        .await
        .0;
    let body = review("CREATE", &object, None);
    let address = server.admission_address;
    async fn verdict_of(client: &Client, address: std::net::SocketAddr, body: &Value) -> Value {
        client.post_json(address, "/validate", body).await.unwrap().1["response"]["allowed"].clone()
    }
    assert_eq!(
        verdict_of(&client, address, &body).await,
        json!(true),
        "parallelism 2 <= 100"
    );

    // A live change: the limit drops to 1. The folder is polled every 50 ms; on a busy machine a poll can come
    // late, so the test waits for the change (up to 10 s) instead of sleeping a fixed time.
    std::fs::write(policies.join("p.yaml"), policy("object.spec.job.parallelism <= 1")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while verdict_of(&client, address, &body).await != json!(false) {
        assert!(
            std::time::Instant::now() < deadline,
            "the new limit was not applied within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A broken change is refused: the previous set keeps denying, /readyz says why, the metric counts it.
    std::fs::write(policies.join("p.yaml"), policy("object.spec.job.parallelism <=")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let readyz = loop {
        let readyz = http_get(&format!("http://{}/readyz", server.admin_address)).await;
        if readyz.contains("latestChangeRefused") {
            break readyz;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the broken change was not seen within 10 s: {readyz}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(verdict_of(&client, address, &body).await, json!(false));
    assert!(readyz.contains("p.yaml:6"), "{readyz}");
    assert!(
        readyz.contains("\"ready\":true"),
        "the last good set is in force: still ready; {readyz}"
    );
    let metrics = server.state.metrics.encode();
    assert!(
        metrics.contains("beamstack_webhook_policy_reloads_total{result=\"rejected\"} 1"),
        "{metrics}"
    );
    server.shutdown().await;
}
