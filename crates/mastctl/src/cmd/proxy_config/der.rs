//! Just enough X.509 to describe a certificate in a table: base64 and PEM decoding, and from
//! a certificate's DER its serial number (lower-case hex, as Go's `%x` prints it) and its
//! validity (RFC 3339 UTC text and Unix seconds).

/// What `proxy-config secret` shows of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The serial number in lower-case hex without leading zeros.
    pub serial: String,
    /// notBefore, e.g. `2023-05-15T01:30:52Z`.
    pub not_before: String,
    /// notAfter.
    pub not_after: String,
    /// notBefore in Unix seconds.
    pub not_before_unix: i64,
    /// notAfter in Unix seconds.
    pub not_after_unix: i64,
}

impl CertInfo {
    /// Whether `now` (Unix seconds) is within the validity.
    pub fn valid_at(&self, now: i64) -> bool {
        self.not_before_unix <= now && now <= self.not_after_unix
    }
}

/// Decodes standard base64 (padding optional, whitespace ignored).
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// The DER of every `CERTIFICATE` block of a PEM text.
pub fn pem_certificates(pem: &str) -> Vec<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(BEGIN) {
        let body = &rest[start + BEGIN.len()..];
        let Some(end) = body.find(END) else { break };
        if let Some(der) = base64_decode(&body[..end]) {
            out.push(der);
        }
        rest = &body[end + END.len()..];
    }
    out
}

/// One DER element: its tag, its content, and what follows it.
fn element(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// Serial and validity of the certificate `der`.
pub fn cert_info(der: &[u8]) -> Option<CertInfo> {
    let (_, cert, _) = element(der)?;
    let (_, tbs, _) = element(cert)?;
    let (mut tag, mut content, mut rest) = element(tbs)?;
    if tag == 0xa0 {
        (tag, content, rest) = element(rest)?;
    }
    if tag != 0x02 {
        return None;
    }
    let serial = serial_hex(content);
    let (_, _, rest) = element(rest)?; // signature algorithm
    let (_, _, rest) = element(rest)?; // issuer
    let (_, validity, _) = element(rest)?;
    let (t1, nb, rest) = element(validity)?;
    let (t2, na, _) = element(rest)?;
    let not_before = asn1_time(t1, nb)?;
    let not_after = asn1_time(t2, na)?;
    Some(CertInfo {
        serial,
        not_before: not_before.rfc3339(),
        not_after: not_after.rfc3339(),
        not_before_unix: not_before.unix(),
        not_after_unix: not_after.unix(),
    })
}

fn serial_hex(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.into()
    }
}

/// A UTC date and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

/// UTCTime (tag 0x17, `YYMMDDHHMMSSZ`) or GeneralizedTime (0x18, `YYYYMMDDHHMMSSZ`).
fn asn1_time(tag: u8, content: &[u8]) -> Option<DateTime> {
    let text = std::str::from_utf8(content).ok()?.strip_suffix('Z')?;
    let num = |s: &str| s.parse::<u32>().ok();
    let (year, rest) = match tag {
        0x17 if text.len() == 12 => {
            let yy = i64::from(num(&text[..2])?);
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        0x18 if text.len() == 14 => (i64::from(num(&text[..4])?), &text[4..]),
        _ => return None,
    };
    Some(DateTime {
        year,
        month: num(&rest[0..2])?,
        day: num(&rest[2..4])?,
        hour: num(&rest[4..6])?,
        minute: num(&rest[6..8])?,
        second: num(&rest[8..10])?,
    })
}

impl DateTime {
    /// `2023-05-16T01:32:52Z`.
    fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// Seconds since 1970-01-01T00:00:00Z.
    fn unix(&self) -> i64 {
        // Days from the civil date (Howard Hinnant's algorithm).
        let y = if self.month <= 2 {
            self.year - 1
        } else {
            self.year
        };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_times() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVs\nbG8").unwrap(), b"hello");
        assert!(base64_decode("a*b").is_none());
        let t = asn1_time(0x17, b"230516013252Z").unwrap();
        assert_eq!(t.rfc3339(), "2023-05-16T01:32:52Z");
        assert_eq!(t.unix(), 1_684_200_772);
        let g = asn1_time(0x18, b"20500101000000Z").unwrap();
        assert_eq!(g.rfc3339(), "2050-01-01T00:00:00Z");
        assert_eq!(asn1_time(0x17, b"700101000000Z").unwrap().unix(), 0);
        assert_eq!(serial_hex(&[0x00, 0x01, 0x93]), "193");
        assert_eq!(serial_hex(&[0x00]), "0");
    }
}
