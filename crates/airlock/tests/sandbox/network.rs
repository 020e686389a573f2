//! What the sandbox must not reach: the host's own addresses and other network namespaces.
use super::*;

/// The host's own non-loopback IPv4 addresses (its interface and the bridges).
pub(crate) fn host_addresses() -> Vec<String> {
    let o = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .unwrap();
    let addrs: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "inet").nth(1))
        .filter_map(|a| a.split('/').next())
        .filter(|a| !a.starts_with("127."))
        .map(str::to_string)
        .collect();
    assert!(
        !addrs.is_empty(),
        "the host has no non-loopback address to test against"
    );
    addrs
}

/// A listener in another network namespace: a container on the default bridge of `engine`
/// (Docker's, or Podman's when the sandbox is Podman's).
pub(crate) struct OtherNamespace {
    engine: &'static str,
    name: String,
    pub(crate) ip: String,
}

impl OtherNamespace {
    pub(crate) fn start(engine: &'static str) -> OtherNamespace {
        images(engine);
        // Unique per test: the tests of this binary run concurrently in one process.
        let name = marker().replace("marker", "peer");
        // Podman's rootful default limits cannot be granted where root lacks CAP_SYS_RESOURCE
        // (see runtime::Rlimits); modest ones can.
        let limits: &[&str] = match engine {
            "podman" => &["--ulimit=nofile=1024:1024", "--ulimit=nproc=1024:1024"],
            _ => &[],
        };
        let o = std::process::Command::new(engine)
            .args(["run", "-d", "--rm", "--name", &name])
            .args(limits)
            .args(["airlock-agent:latest", "python3", "-m", "http.server", "8000"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let o = std::process::Command::new(engine)
            .args(["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &name])
            .output()
            .unwrap();
        let ip = String::from_utf8_lossy(&o.stdout).trim().to_string();
        // Positive control: the host reaches it (so the sandbox's failure means something).
        let reachable = (0..100).any(|_| {
            std::net::TcpStream::connect((ip.as_str(), 8000)).is_ok() || {
                std::thread::sleep(std::time::Duration::from_millis(100));
                false
            }
        });
        assert!(reachable, "the peer container at {ip}:8000 never listened");
        OtherNamespace { engine, name, ip }
    }
}

impl Drop for OtherNamespace {
    fn drop(&mut self) {
        // Podman would wait 10 s for the server to stop on SIGTERM first.
        let now: &[&str] = if self.engine == "podman" { &["--time=0"] } else { &[] };
        let _ = std::process::Command::new(self.engine)
            .args(["rm", "-f"])
            .args(now)
            .arg(&self.name)
            .output();
    }
}
