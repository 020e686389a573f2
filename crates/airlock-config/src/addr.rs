//! `allow_private` entries: a private or loopback destination the gateway may dial anyway.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// One `allow_private` entry: `"10.0.0.5"`, `"10.0.0.5:8080"`, `"[::1]:8080"`, `"10.0.0.0/8"`, `"fd00::/8"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrRule {
    /// Any port on this address.
    Ip(IpAddr),
    /// This address and port only.
    IpPort(SocketAddr),
    /// Any address in the network (host bits of the address are ignored), any port.
    Cidr(IpAddr, u8),
}

impl AddrRule {
    pub fn parse(s: &str) -> Result<AddrRule, String> {
        let s = s.trim();
        if let Some((ip, prefix)) = s.split_once('/') {
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| format!("bad CIDR {s:?}: {ip:?} is not an IP address"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("bad CIDR {s:?}: the prefix length must be 0 to {max}"))?;
            return Ok(AddrRule::Cidr(ip, prefix));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(AddrRule::Ip(ip));
        }
        match s.parse::<SocketAddr>() {
            Ok(sa) if sa.port() == 0 => Err(format!("bad address {s:?}: port 0 is not a destination")),
            Ok(sa) => Ok(AddrRule::IpPort(sa)),
            Err(_) => Err(format!(
                "bad address {s:?}: expected an IP (\"10.0.0.5\"), IP:PORT (\"10.0.0.5:8080\", \"[::1]:8080\") \
                 or CIDR (\"10.0.0.0/8\"); host names are not allowed, the check runs on resolved addresses"
            )),
        }
    }

    /// Whether this entry admits dialing `addr`. IPv4-mapped IPv6 addresses count as their IPv4 form.
    pub fn allows(&self, addr: SocketAddr) -> bool {
        let raw = addr.ip();
        let canonical = raw.to_canonical();
        let ip_ok = |want: IpAddr| want == raw || want.to_canonical() == canonical;
        match *self {
            AddrRule::Ip(ip) => ip_ok(ip),
            AddrRule::IpPort(sa) => ip_ok(sa.ip()) && sa.port() == addr.port(),
            AddrRule::Cidr(net, prefix) => in_net(net, prefix, raw) || in_net(net, prefix, canonical),
        }
    }
}

fn in_net(net: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix.min(128))).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

impl FromStr for AddrRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AddrRule::parse(s)
    }
}

impl fmt::Display for AddrRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddrRule::Ip(ip) => write!(f, "{ip}"),
            AddrRule::IpPort(sa) => write!(f, "{sa}"),
            AddrRule::Cidr(ip, p) => write!(f, "{ip}/{p}"),
        }
    }
}

/// Parses a duration: one or more `<digits><unit>` with unit `s`, `m`, `h` or `d`
/// (`"90s"`, `"5m"`, `"1h30m"`, `"1d"`). Returns seconds; None when malformed or overflowing.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest.chars().next()?;
        let scale = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        rest = &rest[unit.len_utf8()..];
        total = total.checked_add(n.checked_mul(scale)?)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_matches() {
        let ip = AddrRule::parse("10.0.0.5").unwrap();
        assert!(ip.allows(sa("10.0.0.5:1")) && ip.allows(sa("[::ffff:10.0.0.5]:443")));
        assert!(!ip.allows(sa("10.0.0.6:1")));
        let port = AddrRule::parse("[::1]:8080").unwrap();
        assert!(port.allows(sa("[::1]:8080")) && !port.allows(sa("[::1]:8081")));
        let net = AddrRule::parse("10.1.0.0/16").unwrap();
        assert!(net.allows(sa("10.1.200.3:80")) && !net.allows(sa("10.2.0.1:80")));
        assert!(net.allows(sa("[::ffff:10.1.0.9]:80")));
        assert!(AddrRule::parse("0.0.0.0/0").unwrap().allows(sa("1.2.3.4:5")));
        assert!(AddrRule::parse("fd00::/8").unwrap().allows(sa("[fd12::1]:5")));
        assert!(!AddrRule::parse("fd00::/8").unwrap().allows(sa("10.0.0.1:5")));
        assert!(AddrRule::parse("127.0.0.1/32").unwrap().allows(sa("127.0.0.1:9")));
        for bad in [
            "localhost",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.1:0",
            "10.0.0/8",
            "",
            "1.2.3.4:x",
        ] {
            assert!(AddrRule::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(AddrRule::parse("fd00::/8").unwrap().to_string(), "fd00::/8");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(90));
        assert_eq!(parse_duration("5m"), Some(300));
        assert_eq!(parse_duration("1h"), Some(3600));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("2d"), Some(172_800));
        assert_eq!(parse_duration("0s"), Some(0));
        for bad in [
            "",
            "5",
            "m",
            "5x",
            "-5m",
            "5 m",
            "1.5h",
            "99999999999999999999s",
            "18446744073709551615d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
