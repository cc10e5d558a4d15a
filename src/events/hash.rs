//! The anonymising hash of the event catalogue: `h(s)` ([`short_hash`]) is the first 12 lowercase hex
//! characters of SHA-256 of the UTF-8 string `s`.

use sha2::{Digest, Sha256};

/// Length of every hash in an event.
pub const HASH_LEN: usize = 12;

/// `short_hash(parts.join(":"))`, without building the joined string.
pub fn short_hash(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update(b":");
        }
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut out = String::with_capacity(HASH_LEN);
    for byte in digest.iter().take(HASH_LEN / 2) {
        out.push(hex_digit(byte >> 4));
        out.push(hex_digit(byte & 0x0f));
    }
    out
}

fn hex_digit(nibble: u8) -> char {
    char::from(if nibble < 10 {
        b'0' + nibble
    } else {
        b'a' + nibble - 10
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_sha256_prefix() {
        // printf 'test-cluster' | sha256sum
        assert_eq!(short_hash(&["test-cluster"]), "f069097ced1b");
        // the old bridge's namespace hash of `unknown` for cluster `test-cluster`
        assert_eq!(short_hash(&["unknown", "test-cluster"]), "44c3473d88ad");
        assert_eq!(
            short_hash(&["unknown:test-cluster"]),
            short_hash(&["unknown", "test-cluster"])
        );
    }

    #[test]
    fn empty_input_is_hashed_too() {
        // printf '' | sha256sum
        assert_eq!(short_hash(&[""]), "e3b0c44298fc");
    }
}
