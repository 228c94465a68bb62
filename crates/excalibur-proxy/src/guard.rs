//! The destination guard: after resolution, refuse addresses a workload must never
//! reach through the gateway (loopback, private, link-local and metadata, CGNAT,
//! unique-local, multicast, reserved), including IPv4 embedded in IPv6.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is forbidden, or `None` when it is a public unicast address.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            // IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64
            // (64:ff9b::/96) addresses reach the embedded IPv4 address.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let seg = v6.segments();
            if seg[..6] == [0, 0, 0, 0, 0, 0] && !v6.is_loopback() && !v6.is_unspecified() {
                return forbidden_v4(Ipv4Addr::from(u32::from(seg[6]) << 16 | u32::from(seg[7])));
            }
            if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return forbidden_v4(Ipv4Addr::from(u32::from(seg[6]) << 16 | u32::from(seg[7])));
            }
            forbidden_v6(v6)
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    let reason = if ip.is_loopback() {
        "loopback"
    } else if ip.is_unspecified() || o[0] == 0 {
        "unspecified"
    } else if ip.is_private() {
        "private"
    } else if ip.is_link_local() {
        "link_local_or_metadata"
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        "cgnat"
    } else if ip.is_multicast() || ip.is_broadcast() || o[0] >= 240 {
        "reserved"
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        "ietf_protocol_assignment"
    } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
        "benchmarking"
    } else if ip.is_documentation() {
        "documentation"
    } else {
        return None;
    };
    Some(reason)
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    let reason = if ip.is_loopback() {
        "loopback"
    } else if ip.is_unspecified() {
        "unspecified"
    } else if (first & 0xfe00) == 0xfc00 {
        // fc00::/7 unique local, including fd00:ec2::254 (a cloud metadata address).
        "private"
    } else if (first & 0xffc0) == 0xfe80 {
        "link_local_or_metadata"
    } else if ip.is_multicast() {
        "reserved"
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        "documentation"
    } else {
        return None;
    };
    Some(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        for (addr, want) in [
            ("140.82.112.6", None),
            ("2606:4700::1111", None),
            ("127.0.0.1", Some("loopback")),
            ("127.9.9.9", Some("loopback")),
            ("10.1.2.3", Some("private")),
            ("172.16.0.1", Some("private")),
            ("192.168.1.1", Some("private")),
            ("169.254.169.254", Some("link_local_or_metadata")),
            ("100.64.0.1", Some("cgnat")),
            ("100.127.255.255", Some("cgnat")),
            ("100.128.0.1", None),
            ("0.0.0.0", Some("unspecified")),
            ("224.0.0.1", Some("reserved")),
            ("255.255.255.255", Some("reserved")),
            ("::1", Some("loopback")),
            ("::", Some("unspecified")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("::ffff:169.254.169.254", Some("link_local_or_metadata")),
            ("::ffff:8.8.8.8", None),
            ("::127.0.0.1", Some("loopback")),
            ("64:ff9b::a9fe:a9fe", Some("link_local_or_metadata")),
            ("fd00:ec2::254", Some("private")),
            ("fe80::1", Some("link_local_or_metadata")),
            ("ff02::1", Some("reserved")),
        ] {
            assert_eq!(forbidden(addr.parse().unwrap()), want, "{addr}");
        }
    }
}
