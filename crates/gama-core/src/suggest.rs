//! "Did you mean" suggestions for misspelt names.

/// The known name nearest to `name` (edit distance, ignoring case), when it
/// is close enough to be a likely typo or abbreviation.
pub fn nearest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    // librosa's snake_case names (`n_fft`) compare as camelCase (`nFft`).
    let lower = name.replace('_', "").to_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for &candidate in known {
        let target = candidate.to_lowercase();
        let distance = if target.starts_with(&lower) && lower.len() >= 3 {
            // An abbreviation such as `maxMem` for `maxMemory`.
            1
        } else {
            edit_distance(&lower, &target)
        };
        if best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    let limit = (name.chars().count() / 3).clamp(1, 3);
    best.filter(|(d, _)| *d <= limit).map(|(_, c)| c)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: [&str; 5] = ["maxMemory", "maxEntries", "ttl", "policy", "nFft"];

    #[test]
    fn typos_case_and_abbreviations_find_their_name() {
        assert_eq!(nearest("maxMem", &KNOWN), Some("maxMemory"));
        assert_eq!(nearest("maxMemroy", &KNOWN), Some("maxMemory"));
        assert_eq!(nearest("nfft", &KNOWN), Some("nFft"));
        assert_eq!(nearest("TTL", &KNOWN), Some("ttl"));
        assert_eq!(nearest("n_fft", &KNOWN), Some("nFft"));
    }

    #[test]
    fn unrelated_names_get_no_suggestion() {
        assert_eq!(nearest("colour", &KNOWN), None);
        assert_eq!(nearest("sr", &KNOWN), None);
    }
}
