//! A line diff (longest common subsequence) for `profile diff`: unchanged lines start with a
//! space, removed ones with `-`, added ones with `+`.

/// The diff of `a` to `b`, one output line per input line; `None` when they are equal.
pub fn lines(a: &str, b: &str) -> Option<String> {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    if a == b {
        return None;
    }
    // lcs[i][j]: length of the LCS of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!(" {}\n", a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("-{}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+{}\n", b[j]));
            j += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn marks_removed_and_added_lines() {
        let d = super::lines("a\nb\nc\n", "a\nx\nc\n").unwrap();
        assert_eq!(d, " a\n-b\n+x\n c\n");
        assert!(super::lines("a\n", "a\n").is_none());
    }
}
