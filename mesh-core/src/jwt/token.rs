//! Parsing a compact JWT and checking its time and audience claims.

use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

use super::{CLOCK_SKEW_SECS, JwtError};

/// base64url, with or without `=` padding.
const B64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The longest `alg` quoted back in [`JwtError::UnsupportedAlg`].
const MAX_ALG_QUOTE: usize = 32;

/// The signature algorithms mesh verifies: asymmetric ones only, so a token "signed" with
/// HMAC over a public key never passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JwtAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// EdDSA on Ed25519.
    EdDsa,
}

/// The kind of JWK an algorithm needs (`kty`, and `crv` for curves).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// `kty: RSA`.
    Rsa,
    /// `kty: EC` with the curve `crv` (`P-256`, `P-384`).
    Ec(&'static str),
    /// `kty: OKP` with the curve `crv` (`Ed25519`).
    Okp(&'static str),
}

impl JwtAlg {
    /// Every algorithm mesh verifies.
    pub const ALL: [JwtAlg; 9] = [
        JwtAlg::Rs256,
        JwtAlg::Rs384,
        JwtAlg::Rs512,
        JwtAlg::Ps256,
        JwtAlg::Ps384,
        JwtAlg::Ps512,
        JwtAlg::Es256,
        JwtAlg::Es384,
        JwtAlg::EdDsa,
    ];

    /// The algorithm named `name` (the JOSE name, such as `RS256`), or
    /// [`JwtError::UnsupportedAlg`].
    pub fn from_name(name: &str) -> Result<Self, JwtError> {
        Self::ALL
            .into_iter()
            .find(|alg| alg.name() == name)
            .ok_or_else(|| JwtError::UnsupportedAlg(quote(name)))
    }

    /// The JOSE name, such as `RS256` or `EdDSA`.
    pub fn name(self) -> &'static str {
        match self {
            JwtAlg::Rs256 => "RS256",
            JwtAlg::Rs384 => "RS384",
            JwtAlg::Rs512 => "RS512",
            JwtAlg::Ps256 => "PS256",
            JwtAlg::Ps384 => "PS384",
            JwtAlg::Ps512 => "PS512",
            JwtAlg::Es256 => "ES256",
            JwtAlg::Es384 => "ES384",
            JwtAlg::EdDsa => "EdDSA",
        }
    }

    /// The kind of key that verifies this algorithm.
    pub fn key_type(self) -> KeyType {
        match self {
            JwtAlg::Rs256
            | JwtAlg::Rs384
            | JwtAlg::Rs512
            | JwtAlg::Ps256
            | JwtAlg::Ps384
            | JwtAlg::Ps512 => KeyType::Rsa,
            JwtAlg::Es256 => KeyType::Ec("P-256"),
            JwtAlg::Es384 => KeyType::Ec("P-384"),
            JwtAlg::EdDsa => KeyType::Okp("Ed25519"),
        }
    }
}

impl std::fmt::Display for JwtAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `s` shortened to [`MAX_ALG_QUOTE`] characters, control characters dropped, so an
/// attacker's `alg` cannot make the error message long.
fn quote(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(MAX_ALG_QUOTE)
        .collect()
}

/// A parsed compact JWT (`header.payload.signature`) whose header and registered claims
/// have the right types; its signature is not checked yet.
#[derive(Clone, Debug, PartialEq)]
pub struct Jwt {
    token: String,
    /// Where the payload part starts and where the signature part starts.
    payload_at: usize,
    signature_at: usize,
    alg: JwtAlg,
    kid: Option<String>,
    iss: Option<String>,
    sub: Option<String>,
    aud: Vec<String>,
    azp: Option<String>,
    exp: Option<u64>,
    nbf: Option<u64>,
    claims: Value,
}

impl Jwt {
    /// Parses `token`: three base64url parts, a JSON header with a supported `alg` (and a
    /// string `kid`, if any), a JSON object payload whose `iss`, `sub`, `azp` are strings,
    /// `aud` a string or a list of strings, `exp` and `nbf` numbers, and a non-empty
    /// base64url signature. The errors use Envoy's wording.
    pub fn parse(token: &str) -> Result<Self, JwtError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed(format!(
                "found {} sections",
                token.split('.').count()
            )));
        };

        let header = B64.decode(header).map_err(|_| JwtError::HeaderNotBase64)?;
        let header: Value = serde_json::from_slice(&header).map_err(|_| JwtError::HeaderNotJson)?;
        let header = header.as_object().ok_or(JwtError::HeaderNotJson)?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(JwtError::AlgMissing)?;
        let alg = JwtAlg::from_name(alg)?;
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(JwtError::KidNotString),
        };

        let payload = B64
            .decode(payload)
            .map_err(|_| JwtError::PayloadNotBase64)?;
        let claims: Value =
            serde_json::from_slice(&payload).map_err(|_| JwtError::PayloadNotJson)?;
        let map = claims.as_object().ok_or(JwtError::PayloadNotJson)?;
        let iss = string_claim(map, "iss")?;
        let sub = string_claim(map, "sub")?;
        let azp = string_claim(map, "azp")?;
        let aud = match map.get("aud") {
            None => Vec::new(),
            Some(Value::String(aud)) => vec![aud.clone()],
            Some(Value::Array(list)) => list
                .iter()
                .map(|a| a.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or(JwtError::ClaimType("aud"))?,
            Some(_) => return Err(JwtError::ClaimType("aud")),
        };
        let exp = time_claim(map, "exp")?;
        let nbf = time_claim(map, "nbf")?;

        if signature.is_empty() || B64.decode(signature).is_err() {
            return Err(JwtError::SignatureNotBase64);
        }

        let payload_at = token.find('.').map_or(0, |i| i + 1);
        let signature_at = token.rfind('.').map_or(0, |i| i + 1);
        Ok(Jwt {
            token: token.to_owned(),
            payload_at,
            signature_at,
            alg,
            kid,
            iss,
            sub,
            aud,
            azp,
            exp,
            nbf,
            claims,
        })
    }

    /// The whole token as it was given.
    pub fn as_str(&self) -> &str {
        &self.token
    }

    /// What the signature signs: `header.payload`, as written.
    pub fn signing_input(&self) -> &str {
        &self.token[..self.signature_at - 1]
    }

    /// The payload part as written (base64url), for `outputPayloadToHeader`.
    pub fn payload_b64(&self) -> &str {
        &self.token[self.payload_at..self.signature_at - 1]
    }

    /// The signature part as written (base64url; trailing `=` padding removed).
    pub fn signature_b64(&self) -> &str {
        self.token[self.signature_at..].trim_end_matches('=')
    }

    /// The header's `alg`.
    pub fn alg(&self) -> JwtAlg {
        self.alg
    }

    /// The header's `kid`.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The `iss` claim.
    pub fn issuer(&self) -> Option<&str> {
        self.iss.as_deref()
    }

    /// The `sub` claim.
    pub fn subject(&self) -> Option<&str> {
        self.sub.as_deref()
    }

    /// The `aud` claim, as a list (a single string is a list of one).
    pub fn audiences(&self) -> &[String] {
        &self.aud
    }

    /// The `azp` claim (the authorized presenter, Istio's `request.auth.presenter`).
    pub fn presenter(&self) -> Option<&str> {
        self.azp.as_deref()
    }

    /// The `exp` claim, in unix seconds (fractions dropped).
    pub fn expires(&self) -> Option<u64> {
        self.exp
    }

    /// The `nbf` claim, in unix seconds (fractions dropped).
    pub fn not_before(&self) -> Option<u64> {
        self.nbf
    }

    /// The payload: a JSON object.
    pub fn claims(&self) -> &Value {
        &self.claims
    }

    /// The payload, taken out of the token.
    pub fn into_claims(self) -> Value {
        self.claims
    }

    /// Checks `exp` and `nbf` against `now` (unix seconds), allowing
    /// [`CLOCK_SKEW_SECS`]: expired when `exp <= now - skew`, not yet valid when
    /// `nbf > now + skew`.
    pub fn check_time(&self, now: u64) -> Result<(), JwtError> {
        if let Some(exp) = self.exp
            && exp.saturating_add(CLOCK_SKEW_SECS) <= now
        {
            return Err(JwtError::Expired);
        }
        if let Some(nbf) = self.nbf
            && nbf > now.saturating_add(CLOCK_SKEW_SECS)
        {
            return Err(JwtError::NotYetValid);
        }
        Ok(())
    }

    /// Checks `aud` against a rule's `audiences`: any audience passes when `allowed` is
    /// empty; otherwise one of the token's must be allowed. As Envoy, `http://` or
    /// `https://` and a trailing `/` are ignored on both sides.
    pub fn check_audiences(&self, allowed: &[String]) -> Result<(), JwtError> {
        if allowed.is_empty()
            || self
                .aud
                .iter()
                .any(|a| allowed.iter().any(|b| same_audience(a, b)))
        {
            Ok(())
        } else {
            Err(JwtError::AudienceNotAllowed)
        }
    }
}

/// Whether two audiences are the same but for an `http(s)://` prefix and a trailing `/`.
fn same_audience(a: &str, b: &str) -> bool {
    fn norm(s: &str) -> &str {
        let s = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .unwrap_or(s);
        s.strip_suffix('/').unwrap_or(s)
    }
    norm(a) == norm(b)
}

/// The claim `name`, which must be a string when present.
fn string_claim(map: &Map<String, Value>, name: &'static str) -> Result<Option<String>, JwtError> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(JwtError::ClaimType(name)),
    }
}

/// The NumericDate claim `name` in whole seconds: a number (a fraction is dropped, a
/// negative one is 0).
fn time_claim(map: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, JwtError> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(Some(match n.as_u64() {
            Some(n) => n,
            None => {
                let f = n.as_f64().unwrap_or(0.0);
                if f <= 0.0 {
                    0
                } else if f >= u64::MAX as f64 {
                    u64::MAX
                } else {
                    f as u64
                }
            }
        })),
        Some(_) => Err(JwtError::ClaimType(name)),
    }
}
