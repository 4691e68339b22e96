//! Small conversion helpers shared by the route submodules: the error context (resource name
//! and field path), refusal of fields mast-proxy does not implement, durations, fractional
//! percentages and `Any` decoding.

use std::time::Duration;

use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
use envoy_types::pb::google::protobuf::{Any, Duration as PbDuration};

use crate::error::ConfigError;

/// The message kind every route error names.
pub(crate) const KIND: &str = "RouteConfiguration";

/// Where a conversion is: the resource name, for errors.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    /// The RouteConfiguration's name.
    pub name: &'a str,
}

impl Ctx<'_> {
    /// An error at `field`.
    pub fn err(&self, field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::new(KIND, self.name, field, reason)
    }

    /// Refuses the first field of `fields` that is set (`(name, is_set)`), under `path`.
    pub fn deny(&self, path: &str, fields: &[(&str, bool)]) -> Result<(), ConfigError> {
        match fields.iter().find(|(_, set)| *set) {
            Some((f, _)) => Err(self.err(join(path, f), "not supported by mast-proxy")),
            None => Ok(()),
        }
    }
}

/// `path.field`, or `field` at the root.
pub(crate) fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// Whether a proto value differs from its default (the field is set).
pub(crate) fn set<T: Default + PartialEq>(v: &T) -> bool {
    *v != T::default()
}

/// A proto duration; negative or out-of-range values are refused.
pub(crate) fn duration(ctx: Ctx<'_>, path: &str, d: &PbDuration) -> Result<Duration, ConfigError> {
    let (Ok(secs), Ok(nanos)) = (u64::try_from(d.seconds), u32::try_from(d.nanos)) else {
        return Err(ctx.err(path, "negative duration"));
    };
    if nanos >= 1_000_000_000 {
        return Err(ctx.err(path, "nanos out of range"));
    }
    Ok(Duration::new(secs, nanos))
}

/// A duration where `0` means "none".
pub(crate) fn opt_duration(
    ctx: Ctx<'_>,
    path: &str,
    d: Option<&PbDuration>,
) -> Result<Option<Duration>, ConfigError> {
    match d {
        None => Ok(None),
        Some(d) => duration(ctx, path, d).map(|d| (!d.is_zero()).then_some(d)),
    }
}

/// A fractional percentage, evaluated as Envoy does: `random % denominator < numerator`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fraction {
    num: u32,
    den: u32,
}

impl Fraction {
    /// 100%.
    pub const ALWAYS: Fraction = Fraction { num: 1, den: 1 };

    /// Converts a `FractionalPercent` (numerators above the denominator are capped, as Envoy).
    pub fn from_proto(
        ctx: Ctx<'_>,
        path: &str,
        p: &FractionalPercent,
    ) -> Result<Self, ConfigError> {
        let den = match p.denominator {
            0 => 100,
            1 => 10_000,
            2 => 1_000_000,
            other => {
                return Err(ctx.err(join(path, "denominator"), format!("unknown value {other}")));
            }
        };
        Ok(Fraction {
            num: p.numerator.min(den),
            den,
        })
    }

    /// Whether `random` falls in the fraction.
    pub fn hit(self, random: u64) -> bool {
        random % u64::from(self.den) < u64::from(self.num)
    }

    /// An independent draw.
    pub fn roll(self) -> bool {
        self.num >= self.den || (self.num > 0 && self.hit(fastrand::u64(..)))
    }

    /// Whether the fraction is 0.
    pub fn is_zero(self) -> bool {
        self.num == 0
    }

    /// Whether the fraction is 100%.
    pub fn is_full(self) -> bool {
        self.num >= self.den
    }
}

/// Decodes an `Any` holding `T`, checking its type URL.
pub(crate) fn decode_any<T: prost::Message + prost::Name + Default>(
    ctx: Ctx<'_>,
    path: &str,
    any: &Any,
) -> Result<T, ConfigError> {
    let want = T::type_url();
    if any.type_url != want {
        return Err(ctx.err(
            join(path, "type_url"),
            format!("expected {want}, got {}", any.type_url),
        ));
    }
    T::decode(any.value.as_slice()).map_err(|e| ctx.err(path, format!("does not decode: {e}")))
}
