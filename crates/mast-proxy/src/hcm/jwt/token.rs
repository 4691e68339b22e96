//! One JWT: parsing (`header.payload.signature`, base64url, JSON), the registered claims
//! Envoy checks (`iss`, `aud`, `exp`, `nbf`), and [`Status`], the outcome of a verification
//! with the exact texts of Envoy's `jwt_verify_lib` (they are the 401 bodies).

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use serde_json::{Map, Value};

/// Base64url that accepts padded and unpadded input and stray trailing bits, as
/// `jwt_verify_lib`.
pub(crate) const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Encodes with base64url (padded or not).
pub(crate) fn b64url_encode(data: &[u8], pad: bool) -> String {
    if pad {
        general_purpose::URL_SAFE.encode(data)
    } else {
        general_purpose::URL_SAFE_NO_PAD.encode(data)
    }
}

macro_rules! statuses {
    ($($name:ident = $text:literal, $details:literal;)*) => {
        /// Why a JWT was not accepted (Envoy's `google::jwt_verify::Status`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Status {
            /// Verified.
            Ok,
            $(#[doc = $text] $name,)*
        }

        impl Status {
            /// Envoy's text for the status (the local reply's body).
            pub fn message(self) -> &'static str {
                match self {
                    Status::Ok => "OK",
                    $(Status::$name => $text,)*
                }
            }

            /// `%RESPONSE_CODE_DETAILS%`: `jwt_authn_access_denied{<text, spaces as _>}`.
            pub fn details(self) -> &'static str {
                match self {
                    Status::Ok => "",
                    $(Status::$name => $details,)*
                }
            }
        }
    };
}

statuses! {
    Missing = "Jwt is missing", "jwt_authn_access_denied{Jwt_is_missing}";
    NotYetValid = "Jwt not yet valid", "jwt_authn_access_denied{Jwt_not_yet_valid}";
    Expired = "Jwt is expired", "jwt_authn_access_denied{Jwt_is_expired}";
    BadFormat = "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
        "jwt_authn_access_denied{Jwt_is_not_in_the_form_of_Header.Payload.Signature_with_two_dots_and_3_sections}";
    HeaderBadBase64 = "Jwt header is an invalid Base64url encoded",
        "jwt_authn_access_denied{Jwt_header_is_an_invalid_Base64url_encoded}";
    HeaderBadJson = "Jwt header is an invalid JSON", "jwt_authn_access_denied{Jwt_header_is_an_invalid_JSON}";
    HeaderBadAlg = "Jwt header [alg] field is required and must be a string",
        "jwt_authn_access_denied{Jwt_header_[alg]_field_is_required_and_must_be_a_string}";
    HeaderNotImplementedAlg = "Jwt header [alg] is not supported",
        "jwt_authn_access_denied{Jwt_header_[alg]_is_not_supported}";
    HeaderBadKid = "Jwt header [kid] field is not a string",
        "jwt_authn_access_denied{Jwt_header_[kid]_field_is_not_a_string}";
    PayloadBadBase64 = "Jwt payload is an invalid Base64url encoded",
        "jwt_authn_access_denied{Jwt_payload_is_an_invalid_Base64url_encoded}";
    Ed25519WrongLength = "Jwt ED25519 signature is wrong length",
        "jwt_authn_access_denied{Jwt_ED25519_signature_is_wrong_length}";
    PayloadBadJson = "Jwt payload is an invalid JSON", "jwt_authn_access_denied{Jwt_payload_is_an_invalid_JSON}";
    IssNotString = "Jwt payload [iss] field is not a string",
        "jwt_authn_access_denied{Jwt_payload_[iss]_field_is_not_a_string}";
    SubNotString = "Jwt payload [sub] field is not a string",
        "jwt_authn_access_denied{Jwt_payload_[sub]_field_is_not_a_string}";
    IatNotInteger = "Jwt payload [iat] field is not an integer",
        "jwt_authn_access_denied{Jwt_payload_[iat]_field_is_not_an_integer}";
    NbfNotInteger = "Jwt payload [nbf] field is not an integer",
        "jwt_authn_access_denied{Jwt_payload_[nbf]_field_is_not_an_integer}";
    ExpNotInteger = "Jwt payload [exp] field is not an integer",
        "jwt_authn_access_denied{Jwt_payload_[exp]_field_is_not_an_integer}";
    AudNotString = "Jwt payload [aud] field is not a string or string list",
        "jwt_authn_access_denied{Jwt_payload_[aud]_field_is_not_a_string_or_string_list}";
    SignatureBadBase64 = "Jwt signature is an invalid Base64url encoded",
        "jwt_authn_access_denied{Jwt_signature_is_an_invalid_Base64url_encoded}";
    UnknownIssuer = "Jwt issuer is not configured", "jwt_authn_access_denied{Jwt_issuer_is_not_configured}";
    AudienceNotAllowed = "Audiences in Jwt are not allowed",
        "jwt_authn_access_denied{Audiences_in_Jwt_are_not_allowed}";
    VerificationFail = "Jwt verification fails", "jwt_authn_access_denied{Jwt_verification_fails}";
    KidAlgMismatch = "Jwks doesn't have key to match kid or alg from Jwt",
        "jwt_authn_access_denied{Jwks_doesn't_have_key_to_match_kid_or_alg_from_Jwt}";
    JwksFetchFail = "Jwks remote fetch is failed", "jwt_authn_access_denied{Jwks_remote_fetch_is_failed}";
}

/// The algorithms Envoy implements that ring can verify.
const ALGS: [&str; 12] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "HS256", "HS384",
    "HS512", "EdDSA",
];

/// A parsed (not yet verified) JWT.
#[derive(Debug, Clone)]
pub struct Jwt<'t> {
    /// `alg`.
    pub alg: String,
    /// `kid` (empty when absent).
    pub kid: String,
    /// `iss` (empty when absent).
    pub iss: String,
    /// `aud` (a single string becomes one element).
    pub aud: Vec<String>,
    /// `exp` (0 when absent).
    pub exp: i64,
    /// `nbf` (0 when absent).
    pub nbf: i64,
    /// The payload as JSON.
    pub payload: Map<String, Value>,
    /// The payload segment, as received.
    pub payload_b64: &'t str,
    /// The decoded payload bytes (for a padded forward header).
    pub payload_raw: Vec<u8>,
    /// `header.payload`, the signed input.
    pub signed: &'t str,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

fn int_claim(p: &Map<String, Value>, name: &str, bad: Status) -> Result<i64, Status> {
    match p.get(name) {
        None => Ok(0),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().map(|f| f as i64))
            .ok_or(bad),
    }
}

impl<'t> Jwt<'t> {
    /// Parses `token` as `jwt_verify_lib` does (the status names the first problem).
    pub fn parse(token: &'t str) -> Result<Self, Status> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Status::BadFormat);
        };
        let (alg, kid) = parse_header(h)?;
        let payload_raw = B64URL.decode(p).map_err(|_| Status::PayloadBadBase64)?;
        let payload: Map<String, Value> =
            serde_json::from_slice(&payload_raw).map_err(|_| Status::PayloadBadJson)?;
        let iss = match payload.get("iss") {
            None => String::new(),
            Some(Value::String(i)) => i.clone(),
            Some(_) => return Err(Status::IssNotString),
        };
        if payload.get("sub").is_some_and(|s| !s.is_string()) {
            return Err(Status::SubNotString);
        }
        int_claim(&payload, "iat", Status::IatNotInteger)?;
        let nbf = int_claim(&payload, "nbf", Status::NbfNotInteger)?;
        let exp = int_claim(&payload, "exp", Status::ExpNotInteger)?;
        let aud = match payload.get("aud") {
            None => Vec::new(),
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned).ok_or(Status::AudNotString))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(Status::AudNotString),
        };
        let signature = B64URL.decode(s).map_err(|_| Status::SignatureBadBase64)?;
        Ok(Jwt {
            alg,
            kid,
            iss,
            aud,
            exp,
            nbf,
            payload,
            payload_b64: p,
            payload_raw,
            signed: &token[..h.len() + 1 + p.len()],
            signature,
        })
    }

    /// Envoy's time checks: `nbf` and `exp` with `skew` seconds of tolerance.
    pub fn check_time(&self, now: i64, skew: i64, require_exp: bool) -> Status {
        if self.nbf != 0 && self.nbf > now.saturating_add(skew) {
            return Status::NotYetValid;
        }
        if self.exp != 0 && now > self.exp.saturating_add(skew) {
            return Status::Expired;
        }
        if require_exp && self.exp == 0 {
            return Status::Expired;
        }
        Status::Ok
    }

    /// Envoy's `CheckAudience`: any of the token's audiences is allowed (`http(s)://` and a
    /// trailing `/` are ignored on both sides); no configured audience allows all.
    pub fn audience_allowed(&self, allowed: &[String]) -> bool {
        allowed.is_empty()
            || self
                .aud
                .iter()
                .any(|a| allowed.iter().any(|b| sanitize_aud(a) == sanitize_aud(b)))
    }
}

/// The header's `alg` (must be implemented) and `kid`.
fn parse_header(h: &str) -> Result<(String, String), Status> {
    let raw = B64URL.decode(h).map_err(|_| Status::HeaderBadBase64)?;
    let header: Map<String, Value> =
        serde_json::from_slice(&raw).map_err(|_| Status::HeaderBadJson)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(Status::HeaderBadAlg)?;
    if !ALGS.contains(&alg) {
        return Err(Status::HeaderNotImplementedAlg);
    }
    let kid = match header.get("kid") {
        None => String::new(),
        Some(Value::String(k)) => k.clone(),
        Some(_) => return Err(Status::HeaderBadKid),
    };
    Ok((alg.to_owned(), kid))
}

fn sanitize_aud(a: &str) -> &str {
    let a = a
        .strip_prefix("http://")
        .or_else(|| a.strip_prefix("https://"))
        .unwrap_or(a);
    a.strip_suffix('/').unwrap_or(a)
}
