//! Scenario 11: the session launcher `kubectl beam run --session` generates really runs, on a real Flink on loopback.
//!
//! Application mode left this file for the real Flink operator (tests/e2e/tests/flink_operator.rs). Session mode
//! stays here until the operator scenarios cover it (issue 12, scenario 2): it is the one proof that the launcher's
//! command and the uber jar Beam builds from the job server's jar run a pipeline.
//!
//! `scripts/flink-local.sh` prepares Flink 1.19 (from PyPI's apache-flink-libraries and apache-flink), Beam's Flink
//! job-server jar (built with Maven from the published runner: the mirror lacks the published jar) and a venv with the
//! same Beam version's Python SDK. The tests print the objects with `kubectl-beam run --dry-run=client -o yaml`, then
//! execute them the way the Flink operator's standalone mode would, with Flink's own scripts:
//!
//! - application mode: the FlinkDeployment's `job.entryClass` and `job.args` go to `bin/standalone-job.sh
//!   start-foreground --job-classname`, its jar sits in `$FLINK_HOME/usrlib` (the jarURI's
//!   `local:///opt/flink/usrlib/...`), TaskManagers (`bin/taskmanager.sh`) as many as parallelism / slots, slots and
//!   parallelism from the spec; the job is done when the JobManager exits 0, as the application cluster does;
//! - session mode: the session cluster `kubectl beam cluster create` describes (JobManager and its TaskManager
//!   replicas), then the container args of the launcher Job `kubectl beam run --session` makes.
//!
//! What stands in for Kubernetes: the ConfigMap's files are written to a temporary folder that stands for the volume
//! mounted at `/etc/beam/pipeline` (the path is mapped in the launcher command); the session cluster's Service
//! `<cluster>-rest:8081` is mapped to `localhost:28081`; one Beam worker pool on `localhost:50000` (the port the spec
//! names) stands for the harness sidecar of every TaskManager pod; the launcher's `python` is the venv's, and its
//! `$HOME/.apache_beam/cache/jars` holds the job-server jar, as the launcher image would.
//!
//! Gated by BEAMSTACK_FLINK=1 (scripts/test.sh sets it after running scripts/flink-local.sh): unset, the tests skip;
//! set, missing tools are a failure.

use e2e::{plugin_path, root};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const REST_PORT: u16 = 28081;
const BEAM_VERSION: &str = "2.62.0";
const FLINK_MINOR: &str = "1.19";
const PIPELINE_MOUNT: &str = "/etc/beam/pipeline";
const CSV_FILTER: &str = "tests/e2e/fixtures/flink/csv_filter.yaml";
const LEVEL_COUNT: &str = "tests/e2e/fixtures/flink/level_count.yaml";
const ORDERS: &str = "id,customer,amount\n1,alice,10\n2,bob,25\n3,carol,30\n4,dave,20\n5,erin,99\n";
const LOG: &str = "INFO started\nwarn disk 91%\nINFO request ok\n\nERROR timeout\nINFO request ok\nWARN disk 95%\n";

/// One Flink at a time: the ports (REST 28081, worker pool 50000) are fixed.
static FLINK: Mutex<()> = Mutex::new(());

/// What scripts/flink-local.sh prepared (.tools/flink/env).
struct Tools {
    flink_home: PathBuf,
    venv: PathBuf,
    jar: PathBuf,
}

/// None (skip) unless BEAMSTACK_FLINK is set; set, everything must be there.
fn tools() -> Option<Tools> {
    if std::env::var_os("BEAMSTACK_FLINK").is_none() {
        eprintln!("skipped: BEAMSTACK_FLINK is not set (bash scripts/flink-local.sh && BEAMSTACK_FLINK=1 cargo test)");
        return None;
    }
    let env_file = root().join(".tools/flink/env");
    let text = fs::read_to_string(&env_file).unwrap_or_else(|e| {
        panic!(
            "BEAMSTACK_FLINK is set but {}: {e}: bash scripts/flink-local.sh",
            env_file.display()
        )
    });
    let vars: BTreeMap<&str, &str> = text.lines().filter_map(|line| line.split_once('=')).collect();
    assert_eq!(vars.get("BEAM_VERSION"), Some(&BEAM_VERSION), "{text}");
    assert_eq!(vars.get("FLINK_MINOR"), Some(&FLINK_MINOR), "{text}");
    let tools = Tools {
        flink_home: PathBuf::from(vars["FLINK_HOME"]),
        venv: PathBuf::from(vars["BEAM_VENV"]),
        jar: PathBuf::from(vars["JOB_SERVER_JAR"]),
    };
    for path in [
        tools.flink_home.join("bin/standalone-job.sh"),
        tools.venv.join("bin/python"),
        tools.jar.clone(),
        plugin_path(),
    ] {
        assert!(
            path.exists(),
            "BEAMSTACK_FLINK is set but {} is missing",
            path.display()
        );
    }
    Some(tools)
}

/// A process group started for the test, ended (TERM, then KILL) when dropped.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn start(name: &str, mut command: Command, log: PathBuf) -> Proc {
        use std::os::unix::process::CommandExt;
        let out = fs::File::create(&log).unwrap();
        command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0);
        let child = command.spawn().unwrap_or_else(|e| panic!("{name}: {e}"));
        Proc {
            name: name.to_owned(),
            child,
            log,
        }
    }

    fn log(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(60).collect();
        format!(
            "--- last lines of {} ({}) ---\n{}",
            self.name,
            self.log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }

    /// Waits for the process to exit; its exit code, or None at the deadline.
    fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let signal = |sig: &str| {
            let _ = Command::new("kill")
                .args([sig, "--", &group])
                .stderr(Stdio::null())
                .status();
        };
        signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && self.child.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(100));
        }
        // The group's other members (TaskManager children, SDK workers) go too.
        signal("-KILL");
        let _ = self.child.wait();
    }
}

/// A fresh folder for one run, under the system's temporary folder.
fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("beamstack-flink-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    for sub in ["pipeline", "conf", "log", "in", "out", "home"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
    }
    dir
}

/// `kubectl-beam run|cluster create ... --dry-run=client -o yaml`, parsed.
fn dry_run(args: &[&str]) -> Vec<Value> {
    let output = Command::new(plugin_path())
        .args(args)
        .args([
            "--dry-run=client",
            "-o",
            "yaml",
            "--beam-version",
            BEAM_VERSION,
            "--flink-version",
            FLINK_MINOR,
        ])
        .env("BEAMSTACK_CONFIG", root().join(".e2e/no-user-config.yaml"))
        .current_dir(root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "kubectl-beam {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_saphyr::from_multiple::<Value>(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|object| object["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {objects:#?}"))
}

/// The ConfigMap's files, written where the volume would be mounted.
fn mount_config_map(config_map: &Value, dir: &Path) {
    for (file, content) in config_map["data"].as_object().unwrap() {
        fs::write(dir.join(file), content.as_str().unwrap()).unwrap();
    }
}

/// The Flink configuration the operator would give the pods: the spec's flinkConfiguration, memory from the
/// JobManager and TaskManager resources, parallelism; plus loopback addresses and fixed ports, and the JVM options
/// Flink's own config.yaml ships for Java 17.
fn write_flink_conf(tools: &Tools, deployment: &Value, dir: &Path) {
    let shipped = fs::read_to_string(tools.flink_home.join("conf/config.yaml")).unwrap();
    let java_opts = shipped
        .lines()
        .find_map(|line| line.trim().strip_prefix("all: --add-exports"))
        .map(|rest| format!("--add-exports{rest}"))
        .expect("Flink's config.yaml has env.java.opts.all");
    let spec = &deployment["spec"];
    let mut conf: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in spec["flinkConfiguration"].as_object().into_iter().flatten() {
        conf.insert(
            key.clone(),
            value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string()),
        );
    }
    conf.insert(
        "jobmanager.memory.process.size".into(),
        spec["jobManager"]["resource"]["memory"].as_str().unwrap().into(),
    );
    conf.insert(
        "taskmanager.memory.process.size".into(),
        spec["taskManager"]["resource"]["memory"].as_str().unwrap().into(),
    );
    if let Some(parallelism) = spec["job"]["parallelism"].as_u64() {
        conf.insert("parallelism.default".into(), parallelism.to_string());
    }
    for (key, value) in [
        ("env.java.opts.all", java_opts.as_str()),
        ("jobmanager.rpc.address", "localhost"),
        ("jobmanager.rpc.port", "28123"),
        ("jobmanager.bind-host", "localhost"),
        ("blob.server.port", "28124"),
        ("rest.address", "localhost"),
        ("rest.bind-address", "localhost"),
        ("rest.port", &REST_PORT.to_string()),
        ("taskmanager.host", "localhost"),
        ("taskmanager.bind-host", "localhost"),
        ("taskmanager.rpc.port", "0"),
        ("taskmanager.data.port", "0"),
    ] {
        conf.insert(key.into(), value.into());
    }
    let text: String = conf
        .iter()
        .map(|(key, value)| format!("{key}: {}\n", serde_json::to_string(value).unwrap()))
        .collect();
    fs::write(dir.join("config.yaml"), text).unwrap();
    for file in ["log4j.properties", "log4j-console.properties", "log4j-cli.properties"] {
        fs::copy(tools.flink_home.join("conf").join(file), dir.join(file)).unwrap();
    }
}

/// A command in the environment of the Flink image: Flink's home, the run's configuration and logs, the venv's
/// python first on PATH (the driver command and the worker pool run `python`).
fn flink_command(tools: &Tools, program: &Path, dir: &Path) -> Command {
    let mut command = Command::new(program);
    let path = format!(
        "{}:{}",
        tools.venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    command
        .env("FLINK_HOME", &tools.flink_home)
        .env("FLINK_CONF_DIR", dir.join("conf"))
        .env("FLINK_LOG_DIR", dir.join("log"))
        .env("PATH", path)
        .env("HOME", dir.join("home"))
        // Beam's launcher and Flink leave folders in the temporary directory (apache-beam-flink*, beam-driver
        // logs): inside the work folder, they go with it.
        .env("TMPDIR", temporary_dir(dir))
        .current_dir(dir);
    command
}

fn temporary_dir(dir: &Path) -> PathBuf {
    let tmp = dir.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    tmp
}

/// The Beam SDK worker pool on localhost:50000, as the harness sidecar runs it.
fn worker_pool(tools: &Tools, dir: &Path) -> Proc {
    assert!(
        TcpStream::connect(("127.0.0.1", 50000)).is_err(),
        "something already listens on localhost:50000, the worker pool's port"
    );
    let mut command = flink_command(tools, &tools.venv.join("bin/python"), dir);
    command.args([
        "-m",
        "apache_beam.runners.worker.worker_pool_main",
        "--service_port=50000",
    ]);
    let pool = Proc::start("worker pool", command, dir.join("log/worker-pool.out"));
    wait_for("the worker pool on localhost:50000", Duration::from_secs(60), || {
        TcpStream::connect(("127.0.0.1", 50000)).is_ok()
    });
    pool
}

fn task_managers(tools: &Tools, dir: &Path, count: u64) -> Vec<Proc> {
    (0..count)
        .map(|i| {
            let mut command = flink_command(tools, &tools.flink_home.join("bin/taskmanager.sh"), dir);
            command.arg("start-foreground");
            Proc::start(
                &format!("taskmanager {i}"),
                command,
                dir.join(format!("log/taskmanager-{i}.out")),
            )
        })
        .collect()
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// GET on Flink's REST API (curl, as the other scenarios' tools).
fn rest(path: &str) -> Option<Value> {
    let output = Command::new("curl")
        .args(["-sf", "--max-time", "5", &format!("http://localhost:{REST_PORT}{path}")])
        .output()
        .ok()?;
    serde_json::from_slice(&output.stdout).ok()
}

/// The lines of every shard Beam wrote for an output prefix.
fn output_lines(prefix: &Path) -> Vec<String> {
    let name = prefix.file_name().unwrap().to_string_lossy().into_owned();
    let mut lines: Vec<String> = fs::read_dir(prefix.parent().unwrap())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().unwrap().is_file() && entry.file_name().to_string_lossy().starts_with(&name))
        .flat_map(|entry| {
            fs::read_to_string(entry.path())
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    lines
}

fn expected_orders() -> Vec<Value> {
    vec![
        serde_json::json!({"id": 2, "customer": "BOB", "total": 50}),
        serde_json::json!({"id": 3, "customer": "CAROL", "total": 60}),
        serde_json::json!({"id": 5, "customer": "ERIN", "total": 198}),
    ]
}

fn expected_levels() -> Vec<String> {
    vec!["ERROR: 1".into(), "INFO: 3".into(), "WARN: 2".into()]
}

fn assert_outputs(pipeline: &str, prefix: &Path) {
    let lines = output_lines(prefix);
    if pipeline == CSV_FILTER {
        let mut records: Vec<Value> = lines.iter().map(|line| serde_json::from_str(line).unwrap()).collect();
        records.sort_by_key(|record| record["id"].as_i64());
        assert_eq!(records, expected_orders(), "{pipeline}: {lines:?}");
    } else {
        assert_eq!(lines, expected_levels(), "{pipeline}");
    }
}

/// Input files and the Jinja variables pointing the pipeline at them and at its output prefix.
fn inputs(pipeline: &str, dir: &Path) -> (Vec<String>, PathBuf) {
    let (file, content, output) = match pipeline {
        CSV_FILTER => ("orders.csv", ORDERS, "orders"),
        _ => ("app.log", LOG, "levels"),
    };
    let input = dir.join("in").join(file);
    fs::write(&input, content).unwrap();
    let output = dir.join("out").join(output);
    let sets = vec![
        format!("input={}", input.display()),
        format!("output={}", output.display()),
    ];
    (sets, output)
}

/// Application mode: the FlinkDeployment's job run by a standalone application cluster.
/// Session mode: the session cluster of `kubectl beam cluster create`, then the launcher Job of `run --session`.
#[test]
fn session_mode_runs_the_generated_launcher_job() {
    let Some(tools) = tools() else { return };
    let _flink = FLINK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let started = Instant::now();
    let dir = workdir("session");
    let cluster = dry_run(&["cluster", "create", "beam-session"]);
    let session = of_kind(&cluster, "FlinkDeployment");
    assert!(session["spec"]["job"].is_null(), "a session cluster has no job");
    write_flink_conf(&tools, session, &dir.join("conf"));
    let _pool = worker_pool(&tools, &dir);
    let mut command = flink_command(&tools, &tools.flink_home.join("bin/jobmanager.sh"), &dir);
    command.arg("start-foreground");
    let jobmanager = Proc::start("jobmanager", command, dir.join("log/jobmanager.out"));
    let replicas = session["spec"]["taskManager"]["replicas"].as_u64().unwrap_or(1);
    let _taskmanagers = task_managers(&tools, &dir, replicas);
    wait_for(
        &format!("{replicas} TaskManagers registered"),
        Duration::from_secs(180),
        || rest("/overview").is_some_and(|overview| overview["taskmanagers"].as_u64() == Some(replicas)),
    );
    let overview = rest("/overview").unwrap();
    assert!(
        overview["flink-version"].as_str().unwrap().starts_with("1.19."),
        "{overview}"
    );

    // The launcher image holds the job-server jar where Beam's FlinkRunner looks for it.
    let cache = dir.join("home/.apache_beam/cache/jars");
    fs::create_dir_all(&cache).unwrap();
    std::os::unix::fs::symlink(&tools.jar, cache.join(tools.jar.file_name().unwrap())).unwrap();

    for (pipeline, job_name) in [(LEVEL_COUNT, "level-count"), (CSV_FILTER, "csv-filter")] {
        let (sets, output) = inputs(pipeline, &dir);
        let mut args = vec!["run", pipeline, "--session", "beam-session"];
        for set in &sets {
            args.extend(["--set", set.as_str()]);
        }
        let objects = dry_run(&args);
        let launcher = of_kind(&objects, "Job");
        let container = &launcher["spec"]["template"]["spec"]["containers"][0];
        let mount = dir.join("pipeline");
        mount_config_map(of_kind(&objects, "ConfigMap"), &mount);
        let jar = tools.jar.display().to_string();
        let command_args: Vec<String> = [&container["command"], &container["args"]]
            .into_iter()
            .flat_map(|list| list.as_array().unwrap().iter())
            .map(|arg| {
                arg.as_str()
                    .unwrap()
                    .replace(PIPELINE_MOUNT, &mount.display().to_string())
                    .replace("beam-session-rest:8081", &format!("localhost:{REST_PORT}"))
                    // The job server's jar, which the Job's init container copies out of Beam's job server image.
                    .replace("/opt/beam/jars/beam-runners-flink-job-server.jar", &jar)
            })
            .collect();
        for expected in [
            "--runner=FlinkRunner",
            "--flink_submit_uber_jar",
            &format!("--flink_master=localhost:{REST_PORT}"),
        ] {
            assert!(
                command_args.iter().any(|arg| arg == expected),
                "{expected} not in {command_args:?}"
            );
        }
        let mut command = flink_command(&tools, &tools.venv.join("bin").join(&command_args[0]), &dir);
        command.args(&command_args[1..]);
        let mut run = Proc::start("launcher", command, dir.join(format!("log/launcher-{job_name}.out")));
        let code = run.wait(Duration::from_secs(600));
        assert_eq!(
            code,
            Some(0),
            "{pipeline}: the launcher failed\n{}\n{}",
            run.log(),
            jobmanager.log()
        );
        let jobs = rest("/jobs/overview").unwrap();
        assert!(
            jobs["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|job| job["name"] == job_name && job["state"] == "FINISHED"),
            "{pipeline}: {jobs:#}"
        );
        assert_outputs(pipeline, &output);
        eprintln!(
            "session mode: {pipeline} ran on Flink ({:.0?} since the cluster started)",
            started.elapsed()
        );
    }
    drop(_taskmanagers);
    drop(jobmanager);
    drop(_pool);
    let _ = fs::remove_dir_all(&dir);
}
