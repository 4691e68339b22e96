//! Local tokens: issue, verify, forgery, expiry and the key file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt as _;

use common::Temp;
use mast_ca::token::{AuthError, TokenClaims, TokenIssuer};

#[test]
fn issue_and_verify_round_trip() {
    let issuer = TokenIssuer::ephemeral();
    let token = issuer.issue("shop", "cart");
    assert!(token.starts_with("mast1."));
    assert_eq!(
        issuer.verify(&token).unwrap(),
        ("shop".into(), "cart".into())
    );
    assert_eq!(issuer.verify(&format!("{token}\n")).unwrap().1, "cart");
}

#[test]
fn forged_tokens_are_rejected() {
    let issuer = TokenIssuer::ephemeral();
    let other = TokenIssuer::ephemeral();
    let token = issuer.issue("shop", "cart");
    assert_eq!(other.verify(&token), Err(AuthError::BadSignature));
    // Swap the payload for another identity, keep the MAC.
    let forged_payload = issuer.issue("shop", "admin");
    let (_, mac) = token.rsplit_once('.').unwrap();
    let (head, _) = forged_payload.rsplit_once('.').unwrap();
    assert_eq!(
        issuer.verify(&format!("{head}.{mac}")),
        Err(AuthError::BadSignature)
    );
    assert!(matches!(
        issuer.verify("Bearer abc"),
        Err(AuthError::Malformed(_))
    ));
    assert!(matches!(
        issuer.verify("mast1.nodot"),
        Err(AuthError::Malformed(_))
    ));
}

#[test]
fn expired_tokens_are_rejected() {
    let issuer = TokenIssuer::ephemeral();
    let past = issuer.issue_claims(&TokenClaims {
        ns: "a".into(),
        sa: "b".into(),
        iat: 1,
        exp: Some(2),
    });
    assert_eq!(issuer.verify(&past), Err(AuthError::Expired(2)));
    let far = u64::MAX / 2;
    let future = issuer.issue_claims(&TokenClaims {
        ns: "a".into(),
        sa: "b".into(),
        iat: 1,
        exp: Some(far),
    });
    assert!(issuer.verify(&future).is_ok());
}

#[test]
fn key_is_created_once_with_mode_0600_and_reused() {
    let dir = Temp::new("token");
    let ca_dir = dir.0.join("ca");
    let first = TokenIssuer::load_or_create(&ca_dir).unwrap();
    let key = ca_dir.join("token-key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let token = first.issue("ns", "sa");
    let second = TokenIssuer::load_or_create(&ca_dir).unwrap();
    assert_eq!(second.verify(&token).unwrap(), ("ns".into(), "sa".into()));
}
