//! The list of destinations that go direct although a proxy is set: [`NoProxy`].
//!
//! Users write this list once, in `NO_PROXY`, for every program on the machine, so it is read
//! the way curl reads it (curl's `lib/proxy.c`, `proxy_check_noproxy`, as of 8.x): a name
//! matches itself and every subdomain, a leading or trailing dot changes nothing, IP addresses
//! and CIDR ranges match IP literals only (no DNS is ever done to decide), and nothing in the
//! list is an error: an entry that is not understood stays a name that matches nothing real.
//!
//! Where this reads more than curl does, it only adds matches curl would miss for text it has no
//! other use for: an entry may carry a port (`example.com:8080`, `[::1]:8080`), IPv6 may be
//! written in brackets, entries may be separated by blanks alone, `*` exempts everything wherever
//! it stands in the list, and a `/0` range means the whole address family (curl compares the
//! address exactly for `/0`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A no-proxy list (`NO_PROXY`, curl's `--noproxy`): which destinations bypass the proxy.
///
/// Entries are separated by commas and/or blanks; empty entries are ignored; case does not
/// matter. Each entry is one of:
///
/// - `*`: every destination (only as a whole entry: `*.example.com` is a name that matches
///   nothing);
/// - a host name, `example.com`: the name itself and every subdomain (`www.example.com`), not a
///   name that merely ends in the same letters (`notexample.com`). `.example.com` means the
///   same as `example.com` (curl ≥ 7.87.0; 7.86.0 briefly differed), and a trailing dot is
///   ignored on both sides;
/// - an IP address, `127.0.0.1`, `::1` or `[::1]`, or a CIDR range, `10.0.0.0/8`,
///   `fe80::/10`, `[fe80::]/10`: destinations written as an IP literal of the same family within
///   it. A name never matches an IP entry: no DNS is done;
/// - any of the above but `*` followed by `:port` (`example.com:8080`, `10.0.0.0/8:443`,
///   `[::1]:8080`): then only that port matches. Bracketless IPv6 cannot carry a port: `::1:8080`
///   is the address `::1:8080`, so write `[::1]:8080`.
///
/// Anything else is kept as a host name (as curl does), never an error.
///
/// ```
/// use uploadfile::proxy::NoProxy;
///
/// let list = NoProxy::parse("localhost, .internal.example, 10.0.0.0/8, [::1]:8080");
/// assert!(list.matches("localhost", 443));
/// assert!(list.matches("build.internal.example", 80));
/// assert!(!list.matches("notinternal.example", 80));
/// assert!(list.matches("10.255.255.255", 443));
/// assert!(list.matches("::1", 8080));
/// assert!(!list.matches("::1", 8081));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    /// `*` was in the list.
    all: bool,
    entries: Vec<Entry>,
}

/// One entry of the list other than `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    target: Target,
    /// Only this port matches; `None` for any port.
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A lower-case name without leading or trailing dots (never empty).
    Name(String),
    /// An address range: the address masked to its prefix, and the prefix length.
    V4(u32, u8),
    V6(u128, u8),
}

impl NoProxy {
    /// Read a no-proxy list. Never fails: see the type's documentation for what each entry
    /// means.
    pub fn parse(list: &str) -> NoProxy {
        let mut parsed = NoProxy::default();
        for raw in list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
        {
            if raw == "*" {
                parsed.all = true;
            } else if let Some(entry) = Entry::parse(&raw.to_ascii_lowercase()) {
                parsed.entries.push(entry);
            }
        }
        parsed
    }

    /// Whether a request to `host` at `port` goes direct. `host` is a host name or an IP literal
    /// (brackets around IPv6 are tolerated), as [`Proxy::host`](super::Proxy::host) gives it.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.all {
            return true;
        }
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let ip = host.parse::<IpAddr>().ok();
        let name = host.strip_suffix('.').unwrap_or(host);
        self.entries.iter().any(|entry| {
            entry.port.is_none_or(|p| p == port)
                && match (&entry.target, ip) {
                    (Target::Name(entry), None) => name_matches(entry, name),
                    // An IP host only matches an IP entry; a name entry that spells the
                    // address exactly (`127.0.0.1.`) is the one exception.
                    (Target::Name(entry), Some(_)) => entry.eq_ignore_ascii_case(name),
                    (Target::V4(net, len), Some(IpAddr::V4(ip))) => {
                        u32::from(ip) & mask4(*len) == *net
                    }
                    (Target::V6(net, len), Some(IpAddr::V6(ip))) => {
                        u128::from(ip) & mask6(*len) == *net
                    }
                    _ => false,
                }
        })
    }

    /// Whether the list exempts every destination (`*` is one of its entries).
    pub fn is_all(&self) -> bool {
        self.all
    }

    /// Whether the list exempts nothing (it was empty or blank).
    pub fn is_empty(&self) -> bool {
        !self.all && self.entries.is_empty()
    }
}

impl Entry {
    /// One lower-case, non-empty entry other than `*`; `None` when it names nothing at all
    /// (`.`).
    fn parse(raw: &str) -> Option<Entry> {
        // Bracketed IPv6: `[addr]`, `[addr/len]` or `[addr]/len`, then an optional `:port`.
        if let Some(inner) = raw.strip_prefix('[') {
            if let Some((inside, after)) = inner.split_once(']') {
                let (range_tail, port) = match after.rsplit_once(':') {
                    Some((before, port)) => match parse_port(port) {
                        Some(port) => (before, Some(port)),
                        None => return Some(Entry::name(raw, None)),
                    },
                    None => (after, None),
                };
                let range = format!("{inside}{range_tail}");
                return Some(match parse_range(&range) {
                    Some(target @ Target::V6(..)) => Entry { target, port },
                    _ => Entry::name(raw, None),
                });
            }
        }
        // Bracketless: an address or range as a whole first (IPv6 has colons of its own), then
        // `host:port`.
        if let Some(target) = parse_range(raw.strip_suffix('.').unwrap_or(raw)) {
            return Some(Entry { target, port: None });
        }
        if let Some((host, port)) = raw.rsplit_once(':') {
            if let (false, Some(port)) = (host.contains(':'), parse_port(port)) {
                let target = match parse_range(host.strip_suffix('.').unwrap_or(host)) {
                    Some(target @ Target::V4(..)) => target,
                    _ => return Entry::named(host, Some(port)),
                };
                return Some(Entry {
                    target,
                    port: Some(port),
                });
            }
        }
        Entry::named(raw, None)
    }

    /// A name entry, its leading and trailing dot dropped; `None` if nothing is left.
    fn named(raw: &str, port: Option<u16>) -> Option<Entry> {
        let name = raw.strip_prefix('.').unwrap_or(raw);
        let name = name.strip_suffix('.').unwrap_or(name);
        (!name.is_empty()).then(|| Entry::name(name, port))
    }

    fn name(name: &str, port: Option<u16>) -> Entry {
        Entry {
            target: Target::Name(name.to_string()),
            port,
        }
    }
}

/// `host` (trailing dot already dropped) is `entry` or a subdomain of it.
fn name_matches(entry: &str, host: &str) -> bool {
    if host.len() == entry.len() {
        return host.eq_ignore_ascii_case(entry);
    }
    host.len() > entry.len()
        && host.as_bytes()[host.len() - entry.len() - 1] == b'.'
        && host.as_bytes()[host.len() - entry.len()..].eq_ignore_ascii_case(entry.as_bytes())
}

/// `addr` or `addr/len` as a range (host bits cleared); `None` if it is neither, or the prefix
/// is longer than the address.
fn parse_range(text: &str) -> Option<Target> {
    let (addr, len) = match text.split_once('/') {
        Some((addr, len)) => {
            if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (addr, Some(len.parse::<u8>().ok()?))
        }
        None => (text, None),
    };
    if let Ok(ip) = addr.parse::<Ipv4Addr>() {
        let len = len.unwrap_or(32);
        return (len <= 32).then(|| Target::V4(u32::from(ip) & mask4(len), len));
    }
    let ip = addr.parse::<Ipv6Addr>().ok()?;
    let len = len.unwrap_or(128);
    (len <= 128).then(|| Target::V6(u128::from(ip) & mask6(len), len))
}

/// A port as an entry writes it: decimal digits only, within `u16`.
fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn mask4(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask6(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_curl_rules_and_ours() {
        // (list, host, port, goes direct)
        let cases: &[(&str, &str, u16, bool)] = &[
            // `*`
            ("*", "example.com", 443, true),
            ("*", "10.1.2.3", 80, true),
            ("*", "::1", 80, true),
            ("example.org, *", "example.com", 443, true),
            ("*, example.org", "203.0.113.9", 443, true),
            ("*.example.com", "www.example.com", 443, false),
            ("**", "example.com", 443, false),
            // names: the name itself and its subdomains, not a mere suffix
            ("localhost", "localhost", 8080, true),
            ("localhost", "localhost.localdomain", 80, false),
            ("localhost", "127.0.0.1", 80, false),
            ("example.com", "example.com", 443, true),
            ("example.com", "www.example.com", 443, true),
            ("example.com", "a.b.example.com", 443, true),
            ("ample.com", "example.com", 443, false),
            ("ample.com", "www.example.com", 443, false),
            ("example.com", "example.com.org", 443, false),
            ("www.example.com", "example.com", 443, false),
            // a leading dot changes nothing (curl >= 7.87.0)
            (".example.com", "example.com", 443, true),
            (".example.com", "www.example.com", 443, true),
            (".example.com", "nonexample.com", 443, false),
            // trailing dots, on either side
            ("example.com.", "www.example.com", 443, true),
            ("example.com", "example.com.", 443, true),
            ("example.com", "www.example.com.", 443, true),
            // case
            ("EXAMPLE.Com", "www.example.com", 443, true),
            ("example.com", "WWW.Example.COM", 443, true),
            // separators and whitespace
            ("foo,,,,   bar , baz", "bar", 80, true),
            ("foo bar\tbaz", "baz", 80, true),
            ("  ", "example.com", 443, false),
            ("", "example.com", 443, false),
            (",", "example.com", 443, false),
            (".", "example.com", 443, false),
            // IPv4
            ("127.0.0.1", "127.0.0.1", 80, true),
            ("127.0.0.1", "127.0.0.2", 80, false),
            ("127.0.0.1,localhost", "127.0.0.1", 80, true),
            ("localhost,127.0.0.1", "localhost", 80, true),
            ("127.0.0.1", "localhost", 80, false),
            ("127.0.0.1.", "127.0.0.1", 80, true),
            ("10.0.0.1", "10.0.0.1.example.com", 80, false),
            // a name entry is no suffix of an address (no `.0.1` in `10.0.0.1`)
            ("0.1", "10.0.0.1", 80, false),
            ("0.0.1", "10.0.0.1", 80, false),
            // CIDR edges
            ("10.0.0.0/8", "10.0.0.0", 80, true),
            ("10.0.0.0/8", "10.255.255.255", 80, true),
            ("10.0.0.0/8", "9.255.255.255", 80, false),
            ("10.0.0.0/8", "11.0.0.0", 80, false),
            ("192.168.1.0/24", "192.168.1.255", 80, true),
            ("192.168.1.0/24", "192.168.2.0", 80, false),
            ("127.0.0.1/8", "127.200.0.1", 80, true),
            ("192.168.0.1/32", "192.168.0.1", 80, true),
            ("192.168.0.0/32", "192.168.0.1", 80, false),
            ("192.168.0.1/33", "192.168.0.1", 80, false),
            ("192.168.0.0/16a", "192.168.0.1", 80, false),
            ("192.168.0.0/", "192.168.0.1", 80, false),
            ("0.0.0.0/0", "203.0.113.9", 80, true),
            ("0.0.0.0/0", "::1", 80, false),
            ("10.0.0.0/8", "example.com", 80, false),
            // IPv6, with and without brackets
            ("::1", "::1", 80, true),
            ("[::1]", "::1", 80, true),
            ("::1", "[::1]", 80, true),
            ("0:0::1", "::1", 80, true),
            ("::1", "::2", 80, false),
            ("::1", "127.0.0.1", 80, false),
            ("127.0.0.1", "::1", 80, false),
            ("::ffff:127.0.0.1", "127.0.0.1", 80, false),
            ("fe80::/10", "fe80::", 80, true),
            (
                "fe80::/10",
                "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                80,
                true,
            ),
            (
                "fe80::/10",
                "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                80,
                false,
            ),
            ("fe80::/10", "fec0::", 80, false),
            ("[fe80::]/10", "fe80::1", 80, true),
            ("[fe80::/10]", "fe80::1", 80, true),
            ("2001:db8::/65", "2001:db8::1", 80, true),
            ("2001:db8::/65", "2001:db8:0:0:8000::1", 80, false),
            ("::1/129", "::1", 80, false),
            ("::/0", "2001:db8::1", 80, true),
            ("fe80::/10", "fe80", 80, false),
            // ports
            ("example.com:8080", "example.com", 8080, true),
            ("example.com:8080", "www.example.com", 8080, true),
            ("example.com:8080", "example.com", 443, false),
            ("localhost:0", "localhost", 80, false),
            ("127.0.0.1:8080", "127.0.0.1", 8080, true),
            ("127.0.0.1:8080", "127.0.0.1", 8081, false),
            ("10.0.0.0/8:443", "10.9.8.7", 443, true),
            ("10.0.0.0/8:443", "10.9.8.7", 80, false),
            ("[::1]:8080", "::1", 8080, true),
            ("[::1]:8080", "::1", 80, false),
            ("[fe80::]/10:443", "fe80::1", 443, true),
            ("[fe80::]/10:443", "fe80::1", 444, false),
            // bracketless IPv6 takes no port: `::1:8080` is an address
            ("::1:8080", "::1", 8080, false),
            ("::1:8080", "::1:8080", 1, true),
            // not understood: kept as names, matching nothing real
            ("example.com:http", "example.com", 80, false),
            ("example.com:99999", "example.com", 80, false),
            ("[::1]:x", "::1", 80, false),
            ("[example.com]", "example.com", 80, false),
            ("[::1", "::1", 80, false),
        ];
        assert!(cases.len() >= 30);
        for &(list, host, port, direct) in cases {
            assert_eq!(
                NoProxy::parse(list).matches(host, port),
                direct,
                "NO_PROXY={list:?}, {host} port {port}: {:?}",
                NoProxy::parse(list)
            );
        }
    }

    #[test]
    fn all_and_empty() {
        for (list, all, empty) in [
            ("", false, true),
            (" , ,", false, true),
            (".", false, true),
            ("*", true, false),
            ("a, *", true, false),
            ("*.a", false, false),
            ("localhost", false, false),
        ] {
            let parsed = NoProxy::parse(list);
            assert_eq!(
                (parsed.is_all(), parsed.is_empty()),
                (all, empty),
                "{list:?}"
            );
        }
        assert_eq!(NoProxy::parse(""), NoProxy::default());
        assert_eq!(
            NoProxy::parse("Example.COM,10.0.0.0/8"),
            NoProxy::parse(" example.com  10.1.2.3/8 ")
        );
    }

    #[test]
    fn odd_input_is_kept_or_dropped_never_a_panic() {
        let lists = [
            "[",
            "]",
            "[]",
            "[]:",
            "[]:80",
            ":",
            "::",
            ":80",
            "/",
            "/8",
            "1.2.3.4/",
            "[::1]/",
            "[::1]/x",
            "[::1]]",
            "[[::1]]",
            "*:80",
            "*.*",
            "..",
            ".:80",
            "a:b:c",
            "é.example",
            "ÉXAMPLE.com",
            "\u{3000}a\u{3000}",
            "1.2.3.4:",
            "1.2.3.4:-1",
            "300.1.1.1",
            "1.2.3.4/8/8",
            "::1/-1",
            "%",
            "\0",
        ];
        let hosts = [
            "",
            ".",
            "a",
            "é.example",
            "::1",
            "[::1]",
            "1.2.3.4",
            "[",
            "]",
        ];
        for list in lists {
            let parsed = NoProxy::parse(list);
            assert!(!parsed.is_all(), "{list:?}");
            for host in hosts {
                for port in [0, 80, u16::MAX] {
                    let _ = parsed.matches(host, port);
                }
            }
        }
        // Non-ASCII names compare byte for byte (lower-casing is ASCII-only, as curl's).
        assert!(NoProxy::parse("é.example").matches("www.é.example", 1));
        assert!(!NoProxy::parse("É.example").matches("é.example", 1));
    }

    #[test]
    fn masks() {
        assert_eq!((mask4(0), mask4(8), mask4(32)), (0, 0xff00_0000, u32::MAX));
        assert_eq!((mask6(0), mask6(128)), (0, u128::MAX));
        assert_eq!(mask6(10), 0xffc0 << 112);
    }
}
