//! Consistent-hash keys from `RouteAction.hash_policy` (header, cookie value, source IP, query
//! parameter), combined as Envoy combines them (rotate-left-1 then xor, `terminal` stops once
//! a key exists), each hashed with XXH64 (seed 0) as Envoy hashes them, so a key lands on the
//! same ring position in both proxies.

use std::net::IpAddr;

use envoy_types::pb::envoy::config::route::v3::route_action::HashPolicy;
use envoy_types::pb::envoy::config::route::v3::route_action::hash_policy::PolicySpecifier;
use http::HeaderName;

use super::RequestHead;
use super::matcher::query_param;
use super::proto::{Ctx, join};
use crate::error::ConfigError;

#[derive(Debug, Clone)]
enum Key {
    Header(HeaderName),
    Cookie(Box<str>),
    SourceIp,
    Query(Box<str>),
}

/// One compiled hash policy.
#[derive(Debug, Clone)]
pub(crate) struct HashRule {
    key: Key,
    terminal: bool,
}

impl HashRule {
    /// Converts one `HashPolicy` at `path`.
    pub fn from_proto(ctx: Ctx<'_>, path: &str, h: &HashPolicy) -> Result<Self, ConfigError> {
        let key = match &h.policy_specifier {
            Some(PolicySpecifier::Header(hd)) => {
                ctx.deny(
                    &join(path, "header"),
                    &[("regex_rewrite", hd.regex_rewrite.is_some())],
                )?;
                let name = HeaderName::from_bytes(hd.header_name.as_bytes()).map_err(|e| {
                    ctx.err(
                        join(path, "header.header_name"),
                        format!("invalid header name: {e}"),
                    )
                })?;
                Key::Header(name)
            }
            // ttl/path/attributes only shape a generated cookie; mast-proxy hashes an existing
            // cookie's value and generates none.
            Some(PolicySpecifier::Cookie(c)) => Key::Cookie(c.name.as_str().into()),
            Some(PolicySpecifier::ConnectionProperties(c)) => {
                if !c.source_ip {
                    return Err(ctx.err(
                        join(path, "connection_properties.source_ip"),
                        "must be true",
                    ));
                }
                Key::SourceIp
            }
            Some(PolicySpecifier::QueryParameter(q)) => Key::Query(q.name.as_str().into()),
            Some(PolicySpecifier::FilterState(_)) => {
                return Err(ctx.err(join(path, "filter_state"), "not supported by mast-proxy"));
            }
            None => return Err(ctx.err(path, "no policy specifier")),
        };
        Ok(HashRule {
            key,
            terminal: h.terminal,
        })
    }

    fn evaluate(&self, req: &RequestHead<'_>, source_ip: Option<IpAddr>) -> Option<u64> {
        match &self.key {
            Key::Header(name) => {
                let all = req.headers.get_all(name);
                let mut iter = all.iter();
                let first = iter.next()?;
                if iter.next().is_none() {
                    return Some(xxh64(first.as_bytes(), 0));
                }
                // Envoy sorts the values so their order does not matter, then chains the seed.
                let mut values: Vec<&[u8]> = all.iter().map(|v| v.as_bytes()).collect();
                values.sort_unstable();
                Some(values.iter().fold(0, |seed, v| xxh64(v, seed)))
            }
            Key::Cookie(name) => cookie(req.headers, name).map(|v| xxh64(v.as_bytes(), 0)),
            Key::SourceIp => source_ip.map(|ip| xxh64(ip.to_string().as_bytes(), 0)),
            Key::Query(name) => query_param(req.path, name).map(|v| xxh64(v.as_bytes(), 0)),
        }
    }
}

/// Combines the rules' keys as Envoy does; `None` when no rule yields one.
pub(crate) fn hash(
    rules: &[HashRule],
    req: &RequestHead<'_>,
    source_ip: Option<IpAddr>,
) -> Option<u64> {
    let mut hash: Option<u64> = None;
    for rule in rules {
        if let Some(new) = rule.evaluate(req, source_ip) {
            hash = Some(hash.map_or(0, |h| h.rotate_left(1)) ^ new);
        }
        if rule.terminal && hash.is_some() {
            break;
        }
    }
    hash
}

/// The value of cookie `name` (surrounding double quotes removed), as Envoy's
/// `parseCookieValue`; absent or empty gives `None`.
fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|line| {
            line.split(';').find_map(|pair| {
                let (k, v) = pair.trim_start_matches([' ', '\t']).split_once('=')?;
                if k != name {
                    return None;
                }
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                (!v.is_empty()).then_some(v)
            })
        })
}

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

fn merge(acc: u64, v: u64) -> u64 {
    (acc ^ round(0, v)).wrapping_mul(P1).wrapping_add(P4)
}

fn read64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn read32(b: &[u8]) -> u64 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u64::from(u32::from_le_bytes(a))
}

/// XXH64 of `input` with `seed` (the hash Envoy's `HashUtil::xxHash64` uses).
pub(crate) fn xxh64(input: &[u8], seed: u64) -> u64 {
    let mut rest = input;
    let mut h = if input.len() >= 32 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        while rest.len() >= 32 {
            for (i, lane) in v.iter_mut().enumerate() {
                *lane = round(*lane, read64(&rest[i * 8..]));
            }
            rest = &rest[32..];
        }
        let h = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
        v.iter().fold(h, |h, &lane| merge(h, lane))
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(input.len() as u64);
    while rest.len() >= 8 {
        h = (h ^ round(0, read64(rest)))
            .rotate_left(27)
            .wrapping_mul(P1)
            .wrapping_add(P4);
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        h = (h ^ read32(rest).wrapping_mul(P1))
            .rotate_left(23)
            .wrapping_mul(P2)
            .wrapping_add(P3);
        rest = &rest[4..];
    }
    for &b in rest {
        h = (h ^ u64::from(b).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxh64_reference_vectors() {
        assert_eq!(xxh64(b"", 0), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"a", 0), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxh64(b"abc", 0), 0x44BC_2CF5_AD77_0999);
        // Longer than one 32-byte stripe, with 8-, 4- and 1-byte tails.
        let long = b"Nobody inspects the spammish repetition";
        assert_eq!(xxh64(long, 0), 0xFBCE_A83C_8A37_8BF1);
    }

    #[test]
    fn cookies() {
        let mut h = http::HeaderMap::new();
        h.append("cookie", "a=1; sess=\"xyz\"".parse().unwrap());
        h.append("cookie", "b=2;empty=".parse().unwrap());
        assert_eq!(cookie(&h, "sess"), Some("xyz"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "empty"), None);
        assert_eq!(cookie(&h, "none"), None);
    }
}
