//! The comma-separated lists of the handshake: `supported-versions` and `capabilities` (SPOE.txt
//! §3.2.4, §3.2.5). Tokens may carry spaces or tabs around them.

/// The tokens of `list`, each trimmed of ASCII spaces and tabs.
pub(crate) fn tokens(list: &[u8]) -> impl Iterator<Item = &[u8]> {
    list.split(|&b| b == b',').map(trim)
}

/// Strips ASCII spaces and tabs at both ends.
pub(crate) fn trim(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}
