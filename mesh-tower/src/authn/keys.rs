//! JSON Web Key Sets: parsing the keys mesh can verify with, choosing the keys that fit a
//! token, and checking its signature.

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use mesh_core::jwt::{Jwt, JwtAlg, JwtError, KeyType};
use serde_json::{Map, Value};

/// The verification keys of one JWKS.
#[derive(Clone)]
pub(crate) struct KeySet {
    keys: Vec<Key>,
}

#[derive(Clone)]
struct Key {
    kid: Option<String>,
    /// The JWK's own `alg`, when it names one.
    alg: Option<JwtAlg>,
    kind: KeyType,
    key: DecodingKey,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| (&k.kid, k.alg, k.kind)))
            .finish()
    }
}

impl KeySet {
    /// Parses a JWKS (`{"keys": [...]}`). RSA keys, EC keys on P-256 and P-384, and OKP
    /// keys on Ed25519 are kept; keys for encryption (`use: enc`), symmetric keys (`oct`),
    /// other curves and other types are skipped. A key of a kept type with missing or bad
    /// fields is an error naming it (`keys[1]: ...`), and so is a set with no key kept.
    pub(crate) fn parse(json: &str) -> Result<Self, String> {
        let set: Value =
            serde_json::from_str(json).map_err(|e| format!("the JWKS is not JSON: {e}"))?;
        let list = set
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("the JWKS has no [keys] list")?;
        let mut keys = Vec::new();
        for (i, jwk) in list.iter().enumerate() {
            if let Some(key) = parse_key(jwk).map_err(|e| format!("keys[{i}]: {e}"))? {
                keys.push(key);
            }
        }
        if keys.is_empty() {
            return Err(
                "the JWKS has no usable key (RSA, EC on P-256 or P-384, or Ed25519)".into(),
            );
        }
        Ok(KeySet { keys })
    }

    /// Whether a key has the id `kid`.
    pub(crate) fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Checks the signature of `jwt` with the keys that fit it: of the type its `alg`
    /// needs, with the same `alg` when the key names one, and, when the token has a `kid`,
    /// with that `kid` (keys without an id fit any, as in Envoy). None fits:
    /// [`JwtError::NoMatchingKey`]; none of them verifies: [`JwtError::VerificationFailed`].
    pub(crate) fn verify(&self, jwt: &Jwt) -> Result<(), JwtError> {
        let alg = jwt.alg();
        let Some(algorithm) = algorithm(alg) else {
            return Err(JwtError::UnsupportedAlg(alg.name().to_owned()));
        };
        let kind = alg.key_type();
        let mut fitting = false;
        for key in self.keys.iter().filter(|k| {
            k.kind == kind
                && k.alg.is_none_or(|a| a == alg)
                && match (jwt.kid(), k.kid.as_deref()) {
                    (Some(want), Some(have)) => want == have,
                    _ => true,
                }
        }) {
            fitting = true;
            let verified = jsonwebtoken::crypto::verify(
                jwt.signature_b64(),
                jwt.signing_input().as_bytes(),
                &key.key,
                algorithm,
            );
            if matches!(verified, Ok(true)) {
                return Ok(());
            }
        }
        Err(if fitting {
            JwtError::VerificationFailed
        } else {
            JwtError::NoMatchingKey
        })
    }
}

/// The `jsonwebtoken` algorithm of `alg`.
fn algorithm(alg: JwtAlg) -> Option<Algorithm> {
    Some(match alg {
        JwtAlg::Rs256 => Algorithm::RS256,
        JwtAlg::Rs384 => Algorithm::RS384,
        JwtAlg::Rs512 => Algorithm::RS512,
        JwtAlg::Ps256 => Algorithm::PS256,
        JwtAlg::Ps384 => Algorithm::PS384,
        JwtAlg::Ps512 => Algorithm::PS512,
        JwtAlg::Es256 => Algorithm::ES256,
        JwtAlg::Es384 => Algorithm::ES384,
        JwtAlg::EdDsa => Algorithm::EdDSA,
        _ => return None,
    })
}

/// One JWK: `None` when it is of a kind mesh does not verify with.
fn parse_key(jwk: &Value) -> Result<Option<Key>, String> {
    let obj = jwk.as_object().ok_or("not a JSON object")?;
    let kty = field(obj, "kty")?;
    if obj.get("use").and_then(Value::as_str) == Some("enc") {
        return Ok(None);
    }
    let alg = match obj.get("alg") {
        None => None,
        Some(Value::String(name)) => match JwtAlg::from_name(name) {
            Ok(alg) => Some(alg),
            // A key for HMAC, encryption or an algorithm mesh does not verify.
            Err(_) => return Ok(None),
        },
        Some(_) => return Err("[alg] is not a string".into()),
    };
    let kind = match kty {
        "RSA" => {
            field(obj, "n")?;
            field(obj, "e")?;
            KeyType::Rsa
        }
        "EC" => {
            let kind = match field(obj, "crv")? {
                "P-256" => KeyType::Ec("P-256"),
                "P-384" => KeyType::Ec("P-384"),
                _ => return Ok(None),
            };
            field(obj, "x")?;
            field(obj, "y")?;
            kind
        }
        "OKP" => {
            if field(obj, "crv")? != "Ed25519" {
                return Ok(None);
            }
            field(obj, "x")?;
            KeyType::Okp("Ed25519")
        }
        _ => return Ok(None),
    };
    if let Some(alg) = alg
        && alg.key_type() != kind
    {
        return Err(format!("[alg] {alg} does not fit a {kty} key"));
    }
    let kid = match obj.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err("[kid] is not a string".into()),
    };
    let parsed: Jwk = serde_json::from_value(jwk.clone()).map_err(|e| format!("{kty} key: {e}"))?;
    let key = DecodingKey::from_jwk(&parsed).map_err(|e| format!("{kty} key: {e}"))?;
    Ok(Some(Key {
        kid,
        alg,
        kind,
        key,
    }))
}

/// The string field `name` of a JWK.
fn field<'j>(obj: &'j Map<String, Value>, name: &str) -> Result<&'j str, String> {
    match obj.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(format!("[{name}] is not a non-empty string")),
        None => Err(format!("[{name}] is missing")),
    }
}
