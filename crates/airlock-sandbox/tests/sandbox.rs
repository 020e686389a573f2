//! Mount checks, the agent's environment and each runtime's command line.

use std::path::PathBuf;

use airlock_sandbox::container::ldd_paths;
use airlock_sandbox::env::{CA_VARS, EnvError, agent_env, parse_env};
use airlock_sandbox::host_env::{engine_env, find_in_path};
use airlock_sandbox::launch::{Runtime, alive, owner};
use airlock_sandbox::mounts::{Forbidden, MountError, Operator};
use airlock_sandbox::runtime::{
    BwrapHost, Limits, PODMAN_NPROC, Rlimits, SANDBOX_CA, SANDBOX_DATABASE_SOCKET, SANDBOX_SOCKET, Spec,
    apple_container, bwrap, container_run, relay_container,
};

struct Fixture {
    _dir: tempfile::TempDir,
    home: PathBuf,
    /// The user's `$XDG_RUNTIME_DIR`.
    runtime: PathBuf,
    data: PathBuf,
    config: PathBuf,
    project: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    for d in [
        ".ssh",
        ".aws",
        ".config/gcloud",
        "project/src",
        "airlock/airlock-data",
        ".local/share/containers",
    ] {
        std::fs::create_dir_all(home.join(d)).unwrap();
    }
    std::fs::write(home.join(".ssh/id_ed25519"), "key").unwrap();
    std::fs::write(home.join("airlock/airlock.toml"), "").unwrap();
    std::fs::write(home.join("project/src/main.rs"), "").unwrap();
    let runtime = dir.path().join("run-user");
    for d in ["podman", "containerd", "buildkit"] {
        std::fs::create_dir_all(runtime.join(d)).unwrap();
    }
    Fixture {
        runtime,
        data: home.join("airlock/airlock-data"),
        config: home.join("airlock/airlock.toml"),
        project: home.join("project"),
        home,
        _dir: dir,
    }
}

fn operator(f: &Fixture) -> Operator {
    Operator {
        home: Some(f.home.clone()),
        runtime_dirs: vec![f.runtime.clone()],
        engine_sockets: Vec::new(),
    }
}

fn forbidden(f: &Fixture) -> Forbidden {
    Forbidden::new(&operator(f), &f.data, &f.config)
}

fn refused(fb: &Forbidden, src: &std::path::Path) -> String {
    match fb.check(&format!("{}:/x", src.display())) {
        Err(e @ MountError::Refused { .. }) => e.to_string(),
        other => panic!("{src:?} should be refused: {other:?}"),
    }
}

#[test]
fn a_project_directory_mounts() {
    let f = fixture();
    let m = forbidden(&f).check(&format!("{}:/work", f.project.display())).unwrap();
    assert_eq!(m.dst, PathBuf::from("/work"));
    assert!(!m.read_only);
    let m = forbidden(&f)
        .check(&format!("{}:/work:ro", f.project.display()))
        .unwrap();
    assert!(m.read_only);
}

#[test]
fn credentials_and_airlock_state_are_refused() {
    let f = fixture();
    let fb = forbidden(&f);
    for (src, why) in [
        (f.home.join(".ssh"), "SSH keys"),
        (f.home.join(".ssh/id_ed25519"), "SSH keys"),
        (f.home.join(".aws"), "AWS"),
        (f.home.join(".config/gcloud"), "Google Cloud"),
        (f.data.clone(), "data directory"),
        (f.config.clone(), "configuration"),
        // A directory that contains one of them is refused too.
        (f.home.clone(), ""),
    ] {
        let e = fb.check(&format!("{}:/x", src.display())).unwrap_err();
        assert!(matches!(&e, MountError::Refused { .. }), "{src:?}: {e}");
        assert!(e.to_string().contains(why), "{e}");
    }
}

#[test]
fn symlinks_and_env_files_do_not_get_around_it() {
    let f = fixture();
    let link = f.project.join("innocent");
    std::os::unix::fs::symlink(f.home.join(".ssh"), &link).unwrap();
    let e = forbidden(&f).check(&format!("{}:/x", link.display())).unwrap_err();
    assert!(e.to_string().contains("SSH keys"), "{e}");
    std::fs::remove_file(&link).unwrap();

    std::fs::write(f.project.join("src/.env"), "DB_PASSWORD=x").unwrap();
    let e = forbidden(&f)
        .check(&format!("{}:/work", f.project.display()))
        .unwrap_err();
    assert!(e.to_string().contains(".env"), "{e}");
    let e = forbidden(&f)
        .check(&format!("{}:/x", f.project.join("src/.env").display()))
        .unwrap_err();
    assert!(e.to_string().contains(".env file"), "{e}");
}

#[test]
fn bad_specs_say_what_is_wrong() {
    let f = fixture();
    let fb = forbidden(&f);
    assert!(matches!(fb.check("nocolon"), Err(MountError::Syntax(_))));
    assert!(matches!(fb.check("/a:/b:rx"), Err(MountError::Syntax(_))));
    assert!(matches!(
        fb.check("/does/not/exist:/x"),
        Err(MountError::Missing { .. })
    ));
    let p = f.project.display();
    assert!(matches!(
        fb.check(&format!("{p}:relative")),
        Err(MountError::BadDestination { .. })
    ));
    assert!(matches!(
        fb.check(&format!("{p}:/a/../etc")),
        Err(MountError::BadDestination { .. })
    ));
}

#[test]
fn the_environment_names_the_exit_the_ca_and_placeholders_only() {
    let env = agent_env(
        "http://127.0.0.1:3128",
        "/etc/airlock/ca-bundle.pem",
        &[("GMAIL_TOKEN".into(), "airlock-gmail".into())],
        &[("EDITOR".into(), "vi".into())],
    )
    .unwrap();
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    for k in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        assert_eq!(get(k), Some("http://127.0.0.1:3128"), "{k}");
    }
    assert_eq!(get("NO_PROXY"), Some(""));
    assert_eq!(get("no_proxy"), Some(""));
    for k in CA_VARS {
        assert_eq!(get(k), Some("/etc/airlock/ca-bundle.pem"), "{k}");
    }
    assert_eq!(get("GMAIL_TOKEN"), Some("airlock-gmail"));
    assert_eq!(get("EDITOR"), Some("vi"));
    // The Docker CLI fills in from its configuration whichever of these the run leaves unset.
    for k in ["FTP_PROXY", "ftp_proxy"] {
        assert_eq!(get(k), Some("http://127.0.0.1:3128"), "{k}");
    }
    assert_eq!(parse_env("A=b=c").unwrap(), ("A".into(), "b=c".into()));
    assert!(parse_env("=x").is_err() && parse_env("novalue").is_err());
}

fn env_with(k: &str) -> Result<Vec<(String, String)>, EnvError> {
    agent_env(
        "p",
        "c",
        &[("GMAIL_TOKEN".into(), "airlock-gmail".into())],
        &[(k.into(), "x".into())],
    )
}

#[test]
fn proxy_and_airlock_variables_are_refused_in_any_case() {
    // What airlock sets, in any spelling: Python's urllib reads proxy variables in any case.
    for k in [
        "https_proxy",
        "HTTPS_PROXY",
        "hTTps_proxy",
        "No_Proxy",
        "no_proxy",
        "All_Proxy",
        "Ftp_Proxy",
        "ssl_cert_file",
        "gmail_token",
    ] {
        let e = env_with(k).unwrap_err();
        assert!(matches!(e, EnvError::Reserved { .. }), "{k}: {e:?}");
        assert!(e.to_string().contains("cannot be overridden"), "{e}");
    }
    // Any other proxy: the relay is the only exit.
    for k in [
        "SOCKS_PROXY",
        "socks_proxy",
        "Rsync_Proxy",
        "npm_config_https_proxy",
        "GRPC_PROXY",
    ] {
        let e = env_with(k).unwrap_err();
        assert_eq!(e, EnvError::Proxy(k.into()), "{k}");
        assert!(e.to_string().contains("names a proxy"), "{e}");
    }
}

#[test]
fn loader_variables_are_refused() {
    for k in [
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "LD_AUDIT",
        "LD_DEBUG_OUTPUT",
        "ld_preload",
        "GCONV_PATH",
        "GLIBC_TUNABLES",
    ] {
        let e = env_with(k).unwrap_err();
        assert_eq!(e, EnvError::Loader(k.into()), "{k}");
        assert!(e.to_string().contains("dynamic loader"), "{e}");
    }
    // The agent's own interpreters run its own code anyway; ordinary variables pass.
    for k in ["PYTHONSTARTUP", "NODE_OPTIONS", "EDITOR", "PROXY_HOST", "OLD_LD"] {
        assert!(env_with(k).is_ok(), "{k}");
    }
    // Two --env of one name are the user's own business (the last wins), not "airlock sets it".
    let env = agent_env("p", "c", &[], &[("A".into(), "1".into()), ("a".into(), "2".into())]).unwrap();
    assert!(env.contains(&("a".into(), "2".into())));
    assert!(matches!(env_with("A=B"), Err(EnvError::Invalid(_))));
    assert!(matches!(parse_env("novalue"), Err(EnvError::Syntax(_))));
}

#[test]
fn engine_sockets_and_state_are_refused_rootful_and_rootless() {
    let f = fixture();
    let fb = forbidden(&f);
    let engine = "container engine's socket";
    // Rootless: the runtime directory's sockets, its parents, the data roots under home.
    let podman = std::os::unix::net::UnixListener::bind(f.runtime.join("podman/podman.sock")).unwrap();
    for src in [
        f.runtime.join("podman/podman.sock"),
        f.runtime.join("podman"),
        f.runtime.join("containerd"),
        f.runtime.join("buildkit"),
        f.runtime.clone(),
        f.home.join(".local/share/containers"),
        f.home.join(".local"),
    ] {
        let e = refused(&fb, &src);
        assert!(e.contains(engine), "{src:?}: {e}");
    }
    // Rootful: every engine's directory is on the list under /run and /var/run, resolved, and
    // mounting /run or /var/run wholesale is refused (whether or not the engines exist here).
    for p in [
        "/run/docker.sock",
        "/run/docker",
        "/run/containerd",
        "/run/crio",
        "/run/buildkit",
        "/run/podman",
        "/var/lib/docker",
        "/var/lib/containerd",
        "/var/lib/containers",
    ] {
        assert!(
            fb.paths.iter().any(|(b, _)| b == std::path::Path::new(p)),
            "{p} not refused"
        );
    }
    for p in ["/run", "/var/run", "/proc", "/"] {
        assert!(refused(&fb, std::path::Path::new(p)).contains("refused"), "{p}");
    }
    assert!(refused(&fb, std::path::Path::new("/proc")).contains("/proc"));
    drop(podman);
}

#[test]
fn symlinks_parents_and_hard_links_do_not_get_around_the_engine_check() {
    let f = fixture();
    let dir = f.home.parent().unwrap();
    // A runtime directory named through a symlinked parent that does not exist yet
    // (`/var/run` → `/run`, `crio` absent): resolved as far as it exists.
    std::fs::create_dir_all(dir.join("real-run")).unwrap();
    std::os::unix::fs::symlink(dir.join("real-run"), dir.join("var-run")).unwrap();
    let op = Operator {
        runtime_dirs: vec![dir.join("var-run/user")],
        ..operator(&f)
    };
    let fb = Forbidden::new(&op, &f.data, &f.config);
    assert!(refused(&fb, &dir.join("real-run")).contains("container engine"));

    let fb = forbidden(&f);
    // A link to the runtime directory's podman/ from inside a project.
    std::os::unix::fs::symlink(f.runtime.join("podman"), f.project.join("innocent")).unwrap();
    assert!(refused(&fb, &f.project.join("innocent")).contains("container engine"));
    std::fs::remove_file(f.project.join("innocent")).unwrap();
    // Any socket is refused, however it is named or reached: a hard link of an engine's
    // socket, a socket a few levels into a mounted directory.
    let sock = f.runtime.join("containerd/containerd.sock");
    let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::fs::hard_link(&sock, f.project.join("src/d.sock")).unwrap();
    assert!(refused(&fb, &f.project.join("src/d.sock")).contains("Unix socket"));
    assert!(refused(&fb, &f.project).contains("holds a Unix socket"));
    // DOCKER_HOST / CONTAINER_HOST naming a socket elsewhere.
    let elsewhere = dir.join("engine");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let op = Operator {
        engine_sockets: vec![elsewhere.join("engine.sock")],
        ..operator(&f)
    };
    let fb = Forbidden::new(&op, &f.data, &f.config);
    assert!(refused(&fb, &elsewhere).contains("container engine"));
}

#[test]
fn engine_clis_get_only_what_reaches_the_engine() {
    let vars = [
        ("PATH", "/usr/bin"),
        ("HOME", "/home/op"),
        ("XDG_RUNTIME_DIR", "/run/user/1000"),
        ("DOCKER_HOST", "unix:///run/user/1000/docker.sock"),
        ("CONTAINER_HOST", "unix:///run/podman/podman.sock"),
        ("CONTAINERS_CONF", "/etc/containers/containers.conf"),
        ("AIRLOCK_MASTER_KEY", "k"),
        ("GITHUB_TOKEN", "t"),
        ("HTTPS_PROXY", "http://corp:3128"),
        ("http_proxy", "http://corp:3128"),
        ("LD_PRELOAD", "/x.so"),
        ("AWS_SECRET_ACCESS_KEY", "s"),
    ]
    .map(|(k, v)| (k.into(), v.into()));
    let kept: Vec<String> = engine_env(vars)
        .into_iter()
        .map(|(k, _)| k.into_string().unwrap())
        .collect();
    assert_eq!(
        kept,
        [
            "PATH",
            "HOME",
            "XDG_RUNTIME_DIR",
            "DOCKER_HOST",
            "CONTAINER_HOST",
            "CONTAINERS_CONF"
        ]
    );
    let sh = find_in_path("sh".as_ref(), Some("relative:/nonexistent:/bin:/usr/bin".as_ref())).unwrap();
    assert!(sh.is_absolute() && sh.ends_with("sh"), "{sh:?}");
    assert_eq!(find_in_path("sh".as_ref(), Some("relative".as_ref())), None);
    assert_eq!(find_in_path("sh".as_ref(), None), None);
}

fn spec(f: &Fixture) -> Spec {
    Spec {
        run_id: "r1".into(),
        owner: "123:456".into(),
        image: "airlock-agent:test".into(),
        workdir: Some(f.project.clone()),
        mounts: vec![
            forbidden(f)
                .check(&format!("{}:/docs:ro", f.project.join("src").display()))
                .unwrap(),
        ],
        env: vec![("HTTPS_PROXY".into(), "http://relay:3128".into())],
        limits: Limits {
            memory: Some("2g".into()),
            cpus: Some("1".into()),
            pids: 256,
            rlimits: None,
        },
        tty: false,
        command: vec!["python3".into(), "agent.py".into()],
    }
}

#[test]
fn containers_are_hardened_and_labelled() {
    let f = fixture();
    let a = container_run("docker", &spec(&f), "airlock-relay-r1", "/data/ca-bundle.pem");
    let project = f.project.display().to_string();
    for want in [
        "--network=container:airlock-relay-r1",
        "--init",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        "--read-only",
        "--user=65534:65534",
        "--pids-limit=256",
        "--memory=2g",
        "--cpus=1",
        "--label=airlock.run=r1",
        "--label=airlock.owner=123:456",
        &format!("--workdir={project}"),
        &format!("--mount=type=bind,source={project},target={project}"),
        &format!("--mount=type=bind,source=/data/ca-bundle.pem,target={SANDBOX_CA},readonly"),
    ] {
        assert!(a.iter().any(|x| x == want), "{want} missing from {a:?}");
    }
    assert!(a.iter().any(|x| x.starts_with("--tmpfs=/tmp")));
    assert!(a.iter().any(|x| x.ends_with("target=/docs,readonly")));
    assert!(!a.iter().any(|x| x.contains("docker.sock")
        || x.contains(SANDBOX_SOCKET)
        || x == "--privileged"
        || x.starts_with("--network=host")));
    // The command comes last, after the image, untouched.
    assert_eq!(&a[a.len() - 3..], ["airlock-agent:test", "python3", "agent.py"]);

    // The relay: no network at all, the gateway's socket, nothing else mounted.
    let r = relay_container(
        "podman",
        &spec(&f),
        "airlock-relay:abc",
        "/data/agents/mailbot.sock",
        None,
    );
    assert_eq!(r[0], "podman");
    for want in [
        "--network=none",
        "--cap-drop=ALL",
        "--read-only",
        "--user=65534:65534",
        "--label=airlock.run=r1",
        &format!("--mount=type=bind,source=/data/agents/mailbot.sock,target={SANDBOX_SOCKET}"),
    ] {
        assert!(r.iter().any(|x| x == want), "{want} missing from {r:?}");
    }
    assert_eq!(r.iter().filter(|x| x.starts_with("--mount")).count(), 1);
    assert!(!r.iter().any(|x| x.starts_with("--database")));
    // An agent with databases: its database socket too, and the relay's second port.
    let d = relay_container(
        "docker",
        &spec(&f),
        "i",
        "/data/agents/mailbot.sock",
        Some("/data/agents/postgres/mailbot.sock"),
    );
    assert!(d.contains(&format!(
        "--mount=type=bind,source=/data/agents/postgres/mailbot.sock,target={SANDBOX_DATABASE_SOCKET}"
    )));
    assert_eq!(
        &d[d.len() - 2..],
        [
            "--database-listen=127.0.0.1:5432",
            "--database-socket=/run/airlock/postgres.sock"
        ]
    );
    // Podman would copy the proxy variables of its own environment into the containers.
    assert!(r.contains(&"--http-proxy=false".to_string()));
    assert!(container_run("podman", &spec(&f), "r", "/c").contains(&"--http-proxy=false".to_string()));
    assert!(!a.iter().any(|x| x.starts_with("--http-proxy")));
    // Podman's limits are those of `airlock run` (capped: Podman lowers its own), never its
    // rootful default of 2^20, which a root without CAP_SYS_RESOURCE cannot grant.
    let mut s = spec(&f);
    s.limits.rlimits = Some(Rlimits {
        nofile: Some(20000),
        nproc: Some(96370),
    });
    for argv in [
        container_run("podman", &s, "r", "/c"),
        relay_container("podman", &s, "i", "/g", None),
    ] {
        assert!(argv.contains(&"--ulimit=nofile=20000:20000".to_string()), "{argv:?}");
        assert!(
            argv.contains(&format!("--ulimit=nproc={PODMAN_NPROC}:{PODMAN_NPROC}")),
            "{argv:?}"
        );
    }
    s.limits.rlimits = Some(Rlimits {
        nofile: None,
        nproc: Some(4096),
    });
    let p = container_run("podman", &s, "r", "/c");
    assert!(p.contains(&"--ulimit=nproc=4096:4096".to_string()) && !p.iter().any(|x| x.contains("nofile")));
    // Docker's containers inherit the daemon's limits.
    assert!(
        !container_run("docker", &s, "r", "/c")
            .iter()
            .any(|x| x.starts_with("--ulimit"))
    );
    assert_eq!(
        &r[r.len() - 3..],
        [
            "relay",
            "--listen=127.0.0.1:3128",
            &format!("--socket={SANDBOX_SOCKET}")
        ]
    );
}

#[test]
fn bubblewrap_has_no_network_and_read_only_system() {
    let f = fixture();
    let host = BwrapHost {
        exe: "/usr/local/bin/airlock".into(),
        gateway_socket: "/data/agents/mailbot.sock".into(),
        database_socket: None,
        ca_bundle: "/data/ca-bundle.pem".into(),
        signals_fd: 5,
        links: vec![("/bin".into(), "usr/bin".into())],
    };
    let a = bwrap(&spec(&f), &host);
    for flag in [
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
    ] {
        assert!(a.contains(&flag.to_string()), "{flag} missing");
    }
    assert!(!a.contains(&"--share-net".to_string()));
    assert!(a.windows(2).any(|x| x[0] == "--cap-drop" && x[1] == "ALL"));
    assert!(a.windows(2).any(|x| x[0] == "--uid" && x[1] == "65534"));
    let bound = |w: &str| a.windows(3).any(|x| x[0] == "--ro-bind-try" && x[1] == w);
    assert!(bound("/usr") && bound("/etc/passwd") && bound("/etc/ssl"));
    // Not the whole of /etc: no shadow, no host keys.
    assert!(!bound("/etc") && !a.iter().any(|x| x.contains("shadow")));
    assert!(
        a.windows(3)
            .any(|x| x[0] == "--symlink" && x[1] == "usr/bin" && x[2] == "/bin")
    );
    assert!(a.windows(3).any(|x| x[0] == "--bind" && x[2] == SANDBOX_SOCKET));
    assert!(a.windows(3).any(|x| x[0] == "--ro-bind" && x[2] == SANDBOX_CA));
    assert!(a.windows(3).any(|x| x[0] == "--ro-bind" && x[2] == "/docs"));
    let project = f.project.display().to_string();
    assert!(
        a.windows(3)
            .any(|x| x[0] == "--bind" && x[1] == project && x[2] == project)
    );
    let dash = a.iter().position(|x| x == "--").unwrap();
    assert_eq!(
        &a[dash + 1..],
        [
            "/run/airlock/airlock",
            "relay",
            "--listen=127.0.0.1:3128",
            "--socket=/run/airlock/gateway.sock",
            "--signals-fd=5",
            "--",
            "python3",
            "agent.py"
        ]
    );
    // With databases: the database socket bound in, the relay's second port before the agent.
    let with_db = BwrapHost {
        database_socket: Some("/data/agents/postgres/mailbot.sock".into()),
        ..host
    };
    let a = bwrap(&spec(&f), &with_db);
    assert!(
        a.windows(3).any(|x| x[0] == "--bind"
            && x[1] == "/data/agents/postgres/mailbot.sock"
            && x[2] == SANDBOX_DATABASE_SOCKET)
    );
    let dash = a.iter().position(|x| x == "--").unwrap();
    assert_eq!(
        &a[dash + 6..dash + 10],
        [
            "--database-listen=127.0.0.1:5432",
            "--database-socket=/run/airlock/postgres.sock",
            "--",
            "python3"
        ]
    );
}

#[test]
fn apple_container_command_line() {
    let f = fixture();
    let a = apple_container(&spec(&f), "airlock-relay-r1");
    assert_eq!(&a[..3], ["container", "run", "--rm"]);
    assert!(a.contains(&"--network=airlock-relay-r1".to_string()));
    assert!(a.contains(&"--label=airlock.run=r1".to_string()));
    assert_eq!(a.last().map(String::as_str), Some("agent.py"));
}

#[test]
fn runtimes_owners_and_relay_libraries() {
    assert_eq!(Runtime::parse("bubblewrap").unwrap(), Runtime::Bwrap);
    assert!(Runtime::parse("lxc").unwrap_err().contains("docker, podman or bwrap"));
    // This process is alive under its own owner label; a made-up one is not.
    assert!(alive(&owner()));
    assert!(!alive(&format!("{}:1", std::process::id())));
    assert!(!alive("garbage"));
    let ldd = "\tlinux-vdso.so.1 (0x00007ffc)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x1)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x2)\n\t/lib64/ld-linux-x86-64.so.2 (0x3)\n";
    assert_eq!(
        ldd_paths(ldd),
        [
            "/lib/x86_64-linux-gnu/libgcc_s.so.1",
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib64/ld-linux-x86-64.so.2"
        ]
        .map(std::path::PathBuf::from)
    );
}
