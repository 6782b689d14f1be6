//! SS58 addresses of 32-byte account ids: `base58(prefix ++ public ++ checksum[..2])`, where the
//! checksum is BLAKE2b-512 over `b"SS58PRE" ++ prefix ++ public`.

use blake2::{Blake2b512, Digest};

const CHECKSUM_PREAMBLE: &[u8] = b"SS58PRE";
const CHECKSUM_LEN: usize = 2;
const KEY_LEN: usize = 32;
/// The largest prefix the 2-byte form can carry (14 bits).
const MAX_PREFIX: u16 = 16_383;

/// Why a string is not an SS58 address of a 32-byte key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ss58Error {
    #[error("not base58")]
    BadBase58,
    #[error("wrong length for a 32-byte account id")]
    BadLength,
    #[error("invalid network prefix")]
    BadPrefix,
    #[error("reserved network prefix")]
    ReservedPrefix,
    #[error("checksum mismatch")]
    BadChecksum,
}

/// Decodes an SS58 address into its 32-byte public key and network prefix.
///
/// Accepts the 1-byte prefix form (0..=63) and the 2-byte form (64..=16383). Rejects, like
/// `bittensor-wallet`, the reserved prefixes 46 and 47. Unlike it, this accepts 2-byte prefixes
/// missing from the SS58 registry, and rejects 2-byte encodings of prefixes below 64 (they are
/// non-canonical: a second spelling of a 1-byte address).
pub fn decode_ss58(address: &str) -> Result<([u8; KEY_LEN], u16), Ss58Error> {
    // 36 bytes encode to at most 50 base58 characters; refuse to decode anything much longer.
    if address.len() > 64 {
        return Err(Ss58Error::BadLength);
    }
    let data = bs58::decode(address)
        .into_vec()
        .map_err(|_| Ss58Error::BadBase58)?;
    let (prefix, prefix_len) = match data.first() {
        Some(&first @ 0..=63) => (u16::from(first), 1),
        Some(&first @ 64..=127) => {
            let second = *data.get(1).ok_or(Ss58Error::BadLength)?;
            let lower = (first << 2) | (second >> 6);
            let upper = second & 0b0011_1111;
            let prefix = u16::from(lower) | (u16::from(upper) << 8);
            if prefix < 64 {
                return Err(Ss58Error::BadPrefix);
            }
            (prefix, 2)
        }
        Some(_) => return Err(Ss58Error::BadPrefix),
        None => return Err(Ss58Error::BadLength),
    };
    if data.len() != prefix_len + KEY_LEN + CHECKSUM_LEN {
        return Err(Ss58Error::BadLength);
    }
    let (body, checksum) = data.split_at(prefix_len + KEY_LEN);
    if checksum_of(body) != checksum {
        return Err(Ss58Error::BadChecksum);
    }
    if is_reserved(prefix) {
        return Err(Ss58Error::ReservedPrefix);
    }
    let mut public = [0u8; KEY_LEN];
    public.copy_from_slice(&body[prefix_len..]);
    Ok((public, prefix))
}

/// Encodes a 32-byte public key as an SS58 address with `prefix` (42 for Bittensor).
///
/// Prefixes above 16383 do not fit the format and are masked to their low 14 bits.
pub fn encode_ss58(public: &[u8; KEY_LEN], prefix: u16) -> String {
    let prefix = prefix & MAX_PREFIX;
    let mut data = Vec::with_capacity(2 + KEY_LEN + CHECKSUM_LEN);
    if prefix < 64 {
        // Masked above, so it fits in one byte.
        data.push((prefix & 0x3f) as u8);
    } else {
        let [low, high] = prefix.to_le_bytes();
        data.push(((low & 0b1111_1100) >> 2) | 0b0100_0000);
        data.push(high | ((low & 0b0000_0011) << 6));
    }
    data.extend_from_slice(public);
    let checksum = checksum_of(&data);
    data.extend_from_slice(&checksum);
    bs58::encode(data).into_string()
}

/// Prefixes the SS58 registry reserves (46, 47); Substrate refuses addresses using them.
fn is_reserved(prefix: u16) -> bool {
    matches!(prefix, 46 | 47)
}

fn checksum_of(body: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut hasher = Blake2b512::new();
    hasher.update(CHECKSUM_PREAMBLE);
    hasher.update(body);
    let digest = hasher.finalize();
    [digest[0], digest[1]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_form_prefix_bits_round_trip() {
        let key = [7u8; 32];
        for prefix in [0, 1, 42, 63, 64, 65, 255, 256, 1000, 4095, 16_383] {
            let address = encode_ss58(&key, prefix);
            assert_eq!(decode_ss58(&address), Ok((key, prefix)), "prefix {prefix}");
        }
    }

    #[test]
    fn reserved_prefixes_are_rejected() {
        let key = [7u8; 32];
        for prefix in [46, 47] {
            assert_eq!(
                decode_ss58(&encode_ss58(&key, prefix)),
                Err(Ss58Error::ReservedPrefix)
            );
        }
    }

    #[test]
    fn non_canonical_full_form_is_rejected() {
        // 42 written in the 2-byte form.
        let mut data = vec![(42u8 >> 2) | 0x40, (42u8 & 3) << 6];
        data.extend_from_slice(&[7u8; 32]);
        let checksum = checksum_of(&data);
        data.extend_from_slice(&checksum);
        let address = bs58::encode(data).into_string();
        assert_eq!(decode_ss58(&address), Err(Ss58Error::BadPrefix));
    }

    #[test]
    fn high_first_byte_is_rejected() {
        let mut data = vec![0x80, 0x00];
        data.extend_from_slice(&[7u8; 32]);
        let checksum = checksum_of(&data);
        data.extend_from_slice(&checksum);
        let address = bs58::encode(data).into_string();
        assert_eq!(decode_ss58(&address), Err(Ss58Error::BadPrefix));
    }
}
