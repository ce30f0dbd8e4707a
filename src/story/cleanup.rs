//! Decoded words into prose: no space before punctuation, quotes attached to what they quote, sentences and
//! "I" capitalised, a word repeated next to itself said once, and a final full stop.

/// Tokens that attach to the word before them.
fn closes(token: &str) -> bool {
    matches!(token, "." | "," | ";" | ":" | "!" | "?" | "..." | ")" | "]" | "%") || token.starts_with('\'')
}

/// Tokens that attach to the word after them.
fn opens(token: &str) -> bool {
    matches!(token, "(" | "[" | "$")
}

fn ends_sentence(token: &str) -> bool {
    matches!(token, "." | "!" | "?" | "...")
}

fn is_word(token: &str) -> bool {
    token.chars().any(char::is_alphanumeric)
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Joins decoded tokens into a story.
pub fn clean_up(tokens: &[&str]) -> String {
    let (out, mut inside_quote) = joined(tokens);
    // A quote opened at the very end has nothing to quote; one opened earlier is closed.
    let mut out = out;
    if inside_quote && out.ends_with('"') {
        out.pop();
        inside_quote = false;
    }
    let mut out = out.trim_end_matches([',', ';', ':', ' ']).to_string();
    if !(out.is_empty() || out.ends_with(['.', '!', '?', '"'])) {
        out.push('.');
    }
    if inside_quote {
        out.push('"');
    }
    out
}

/// The first tokens of a story as [`clean_up`] joins them, before it ends the story (no closing full stop
/// or quote): what is shown while the story is written.
pub fn clean_up_so_far(tokens: &[&str]) -> String {
    joined(tokens).0
}

/// The tokens joined with spaces, capitals and quotes where they belong, and whether a quote is open.
fn joined(tokens: &[&str]) -> (String, bool) {
    // Adjacent repeats go first ("the the", ". ."), as neural-storyteller did.
    let mut kept: Vec<&str> = Vec::with_capacity(tokens.len());
    for &token in tokens {
        if kept.last().is_some_and(|last| last.eq_ignore_ascii_case(token)) {
            continue;
        }
        kept.push(token);
    }
    // A story does not start with punctuation that closes something.
    while kept.first().is_some_and(|token| closes(token) || (!is_word(token) && *token != "\"")) {
        kept.remove(0);
    }
    let mut out = String::new();
    let mut sentence_start = true;
    let mut inside_quote = false;
    let mut glue_next = false;
    let mut previous = "";
    for token in kept {
        let text = if token == "i" || token.starts_with("i'") {
            sentence_start = false;
            capitalise(token)
        } else if sentence_start && is_word(token) {
            sentence_start = false;
            capitalise(token)
        } else {
            token.to_string()
        };
        let attach = if token == "\"" {
            // An opening quote takes a space before it; a closing one attaches to the word before. After
            // `?"` or `!"` the sentence usually goes on (`"Why?" asked he`).
            inside_quote = !inside_quote;
            if !inside_quote && matches!(previous, "?" | "!") {
                sentence_start = false;
            }
            !inside_quote
        } else {
            closes(token)
        };
        if !out.is_empty() && !attach && !glue_next {
            out.push(' ');
        }
        out.push_str(&text);
        glue_next = opens(token) || (token == "\"" && inside_quote);
        if token == "\"" && inside_quote {
            sentence_start = true; // dialogue starts with a capital
        }
        if ends_sentence(token) {
            sentence_start = true;
        }
        previous = token;
    }
    (out, inside_quote)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(text: &str) -> String {
        clean_up(&text.split(' ').collect::<Vec<_>>())
    }

    #[test]
    fn spacing_capitals_and_repeats() {
        assert_eq!(
            clean("the the ship sailed , and i saw it . it was gone"),
            "The ship sailed, and I saw it. It was gone."
        );
        assert_eq!(clean(", he said \" come here \" and left ."), "He said \"Come here\" and left.");
        assert_eq!(clean("i'm sure it's there ! really ?"), "I'm sure it's there! Really?");
        assert_eq!(clean("we waited ( long ) ;"), "We waited (long).");
        assert_eq!(clean("\" why ? \" asked he . \""), "\"Why?\" asked he.");
        assert_eq!(clean("he said . \" i was willing"), "He said. \"I was willing.\"");
    }
}
