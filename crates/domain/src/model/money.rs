//! Currencies and exact amounts. Money is never a float inside Tessera: an amount is a signed
//! 64-bit count of the currency's minor unit, and the size of that unit (its scale) is
//! configuration, not code.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::error::ValidationError;

/// A currency code known to the configuration (lower case, e.g. `usd`, `sat`). Only
/// [`Currencies`] makes one, so holding a `Currency` means it is configured.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Currency(String);

impl Currency {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The configured currencies and their scales: one major unit is `10^scale` minor units
/// (`usd = 6`: micro-dollars; `sat = 3`: millisatoshis), plus the currency of every user's first
/// wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currencies {
    scales: BTreeMap<String, u32>,
    default: String,
}

/// Whether `code` is a well-formed currency code: 2–16 lower-case ASCII letters, digits or `_`,
/// starting with a letter (the database CHECK says the same).
pub fn is_currency_code(code: &str) -> bool {
    (2..=16).contains(&code.len())
        && code.starts_with(|c: char| c.is_ascii_lowercase())
        && code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl Currencies {
    /// The largest scale: `10^18` still fits in an `i64`.
    pub const MAX_SCALE: u32 = 18;

    /// Checks the configuration: well-formed codes, scales up to [`Self::MAX_SCALE`], and a
    /// default that is one of them.
    pub fn new(
        scales: impl IntoIterator<Item = (String, u32)>,
        default: &str,
    ) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for (code, scale) in scales {
            let code = code.to_ascii_lowercase();
            if !is_currency_code(&code) {
                return Err(format!(
                    "currency code {code:?} must be 2-16 lower-case letters, digits or '_', \
                     starting with a letter"
                ));
            }
            if scale > Self::MAX_SCALE {
                return Err(format!(
                    "currency {code}: scale {scale} is larger than {}",
                    Self::MAX_SCALE
                ));
            }
            map.insert(code, scale);
        }
        let default = default.to_ascii_lowercase();
        if !map.contains_key(&default) {
            return Err(format!(
                "the default currency {default:?} is not among the configured currencies"
            ));
        }
        Ok(Self {
            scales: map,
            default,
        })
    }

    /// The currency of every user's first wallet.
    pub fn default_currency(&self) -> Currency {
        Currency(self.default.clone())
    }

    /// A configured currency by code, compared case-insensitively. Anything else is a 422 on
    /// `field`.
    pub fn parse(&self, field: &'static str, raw: &str) -> Result<Currency, ValidationError> {
        let code = raw.trim().to_ascii_lowercase();
        if self.scales.contains_key(&code) {
            Ok(Currency(code))
        } else {
            let known: Vec<&str> = self.scales.keys().map(String::as_str).collect();
            Err(ValidationError::new(
                field,
                format!("unknown currency; expected one of: {}", known.join(", ")),
            ))
        }
    }

    /// Minor units per major unit, as a power of ten.
    pub fn scale(&self, currency: &Currency) -> u32 {
        self.scales.get(&currency.0).copied().unwrap_or(0)
    }

    /// Every configured currency with its scale, by code.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.scales.iter().map(|(c, s)| (c.as_str(), *s))
    }
}

impl Default for Currencies {
    /// `usd` (micro-dollars) and `sat` (millisatoshis), defaulting to `usd`.
    fn default() -> Self {
        Self {
            scales: BTreeMap::from([("usd".to_owned(), 6), ("sat".to_owned(), 3)]),
            default: "usd".to_owned(),
        }
    }
}

/// An exact amount: a currency and a signed count of its minor unit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Money {
    currency: Currency,
    minor: i64,
}

fn out_of_range(field: &'static str) -> ValidationError {
    ValidationError::new(field, "amount is out of range")
}

impl Money {
    pub fn from_minor(currency: Currency, minor: i64) -> Self {
        Self { currency, minor }
    }

    /// Whole major units (whole sats, whole dollars) scaled exactly to minor units; an amount
    /// that does not fit in an `i64` after scaling is a validation error on `field`.
    pub fn from_major(
        currencies: &Currencies,
        currency: Currency,
        major: i64,
        field: &'static str,
    ) -> Result<Self, ValidationError> {
        let factor = 10_i64
            .checked_pow(currencies.scale(&currency))
            .ok_or_else(|| out_of_range(field))?;
        let minor = major
            .checked_mul(factor)
            .ok_or_else(|| out_of_range(field))?;
        Ok(Self { currency, minor })
    }

    /// A decimal number of major units (`"12.5"`, `"-0.000001"`), converted exactly: more
    /// fractional digits than the currency's scale, exponents, or anything beyond `i64` after
    /// scaling is a validation error on `field`. Never rounds.
    pub fn from_decimal(
        currencies: &Currencies,
        currency: Currency,
        raw: &str,
        field: &'static str,
    ) -> Result<Self, ValidationError> {
        let scale = currencies.scale(&currency);
        let invalid = || ValidationError::new(field, "must be a decimal number");
        let (negative, digits) = match raw.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, raw.strip_prefix('+').unwrap_or(raw)),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if (whole.is_empty() && fraction.is_empty())
            || !whole.chars().all(|c| c.is_ascii_digit())
            || !fraction.chars().all(|c| c.is_ascii_digit())
        {
            return Err(invalid());
        }
        let fraction = fraction.trim_end_matches('0');
        if fraction.len() > scale as usize {
            return Err(ValidationError::new(
                field,
                format!("has more than {scale} decimal places; it cannot be represented exactly"),
            ));
        }
        // Every digit, with the fraction padded to the scale, read as one integer of minor units.
        let padded = format!("{whole}{fraction:0<width$}", width = scale as usize);
        let mut minor: i64 = 0;
        for d in padded.bytes() {
            minor = minor
                .checked_mul(10)
                .and_then(|m| m.checked_add(i64::from(d - b'0')))
                .ok_or_else(|| out_of_range(field))?;
        }
        if negative {
            minor = -minor;
        }
        Ok(Self { currency, minor })
    }

    pub fn currency(&self) -> &Currency {
        &self.currency
    }

    pub fn minor(&self) -> i64 {
        self.minor
    }

    /// The amount in major units as an exact decimal string (`12500000` usd → `"12.5"`).
    pub fn to_decimal_string(&self, currencies: &Currencies) -> String {
        let scale = currencies.scale(&self.currency) as usize;
        let digits = self.minor.unsigned_abs().to_string();
        let sign = if self.minor < 0 { "-" } else { "" };
        if scale == 0 {
            return format!("{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = padded.split_at(padded.len() - scale);
        let fraction = fraction.trim_end_matches('0');
        if fraction.is_empty() {
            format!("{sign}{whole}")
        } else {
            format!("{sign}{whole}.{fraction}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn currencies() -> Currencies {
        Currencies::default()
    }

    fn cur(code: &str) -> Currency {
        currencies()
            .parse("currency", code)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn configuration_is_checked() {
        assert!(Currencies::new([("usd".into(), 6)], "usd").is_ok());
        assert!(Currencies::new([("usd".into(), 6)], "eur").is_err());
        assert!(Currencies::new([("usd".into(), 19)], "usd").is_err());
        assert!(Currencies::new([("u s".into(), 2)], "u s").is_err());
        let upper = Currencies::new([("EUR".into(), 2)], "Eur");
        assert_eq!(upper.map(|c| c.default_currency().0), Ok("eur".to_owned()));
    }

    #[test]
    fn unknown_currencies_are_refused() {
        assert!(currencies().parse("currency", "USD").is_ok());
        assert!(currencies().parse("currency", "eur").is_err());
        assert!(currencies().parse("currency", "").is_err());
    }

    #[test]
    fn major_units_scale_exactly_or_fail() {
        let sat = cur("sat");
        let m = Money::from_major(&currencies(), sat.clone(), -60, "amount");
        assert_eq!(m.map(|m| m.minor()), Ok(-60_000));
        assert!(
            Money::from_major(&currencies(), sat.clone(), i64::MAX / 1000 + 1, "amount").is_err()
        );
        assert!(Money::from_major(&currencies(), sat, i64::MIN / 1000 - 1, "amount").is_err());
    }

    #[test]
    fn decimals_convert_exactly_or_fail() {
        let usd = cur("usd");
        let parse = |raw: &str| Money::from_decimal(&currencies(), usd.clone(), raw, "amount");
        assert_eq!(parse("12.5").map(|m| m.minor()), Ok(12_500_000));
        assert_eq!(parse("-0.000001").map(|m| m.minor()), Ok(-1));
        assert_eq!(parse("3").map(|m| m.minor()), Ok(3_000_000));
        assert_eq!(parse("1.2300000").map(|m| m.minor()), Ok(1_230_000));
        assert_eq!(parse(".5").map(|m| m.minor()), Ok(500_000));
        for bad in [
            "",
            ".",
            "1e3",
            "0.0000001",
            "1.2.3",
            "abc",
            "9223372036854.775808",
            "--1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse("9223372036854.775807").map(|m| m.minor()),
            Ok(i64::MAX)
        );
    }

    #[test]
    fn amounts_print_as_exact_decimals() {
        let usd = cur("usd");
        let show = |minor| Money::from_minor(usd.clone(), minor).to_decimal_string(&currencies());
        assert_eq!(show(12_500_000), "12.5");
        assert_eq!(show(-1), "-0.000001");
        assert_eq!(show(0), "0");
        assert_eq!(show(i64::MIN), "-9223372036854.775808");
    }
}
