//! [`Keys`]: a batch's `__key__`s, held in one buffer.

use std::fmt;
use std::ops::{Index, Range};

/// The `__key__`s of a batch's samples, in batch order, held in one buffer (not a `String`
/// each: building a batch of small samples then costs no allocation per key).
///
/// ```
/// use atdata_codec::Keys;
///
/// let mut keys: Keys = ["a", "b"].into_iter().collect();
/// keys.push("c");
/// assert_eq!(keys, ["a", "b", "c"]);
/// assert_eq!(&keys[1], "b");
/// assert_eq!(keys.iter().rev().next(), Some("c"));
/// assert_eq!(keys.split_off(2), ["c"]);
/// assert_eq!(keys.len(), 2);
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Keys {
    text: String,
    /// Where each key ends in `text`.
    ends: Vec<usize>,
}

impl Keys {
    /// No keys.
    pub fn new() -> Keys {
        Keys::default()
    }

    /// No keys, with room for `keys` of `bytes` in all.
    pub fn with_capacity(keys: usize, bytes: usize) -> Keys {
        Keys {
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(keys),
        }
    }

    /// Room for `keys` more, of `bytes` more in all.
    pub fn reserve(&mut self, keys: usize, bytes: usize) {
        self.text.reserve(bytes);
        self.ends.reserve(keys);
    }

    /// Adds `key` at the end.
    pub fn push(&mut self, key: &str) {
        self.text.push_str(key);
        self.ends.push(self.text.len());
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Key `index`, or `None` past the end.
    pub fn get(&self, index: usize) -> Option<&str> {
        self.span(index).map(|span| &self.text[span])
    }

    /// The keys, in order.
    pub fn iter(&self) -> KeysIter<'_> {
        KeysIter {
            keys: self,
            front: 0,
            back: self.len(),
        }
    }

    /// Moves the keys from `at` on into new keys (none when `at` is past the end).
    pub fn split_off(&mut self, at: usize) -> Keys {
        let Some(start) = self.start(at) else {
            return Keys::new();
        };
        let tail = Keys {
            text: self.text.split_off(start),
            ends: self
                .ends
                .split_off(at)
                .iter()
                .map(|end| end - start)
                .collect(),
        };
        self.ends.truncate(at);
        tail
    }

    /// Moves `other`'s keys onto the end.
    pub fn append(&mut self, other: Keys) {
        let offset = self.text.len();
        self.text.push_str(&other.text);
        self.ends.extend(other.ends.iter().map(|end| end + offset));
    }

    /// Where key `index` starts (`Some(len)` just past the end).
    fn start(&self, index: usize) -> Option<usize> {
        match index {
            0 => Some(0),
            _ => self.ends.get(index - 1).copied(),
        }
    }

    fn span(&self, index: usize) -> Option<Range<usize>> {
        Some(self.start(index)?..*self.ends.get(index)?)
    }
}

impl Index<usize> for Keys {
    type Output = str;

    /// Key `index`; panics past the end, as a slice does.
    fn index(&self, index: usize) -> &str {
        match self.get(index) {
            Some(key) => key,
            None => panic!("key {index} of a batch of {} keys", self.len()),
        }
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<S: AsRef<str>> FromIterator<S> for Keys {
    fn from_iter<I: IntoIterator<Item = S>>(keys: I) -> Keys {
        let mut all = Keys::new();
        all.extend(keys);
        all
    }
}

impl<S: AsRef<str>> Extend<S> for Keys {
    fn extend<I: IntoIterator<Item = S>>(&mut self, keys: I) {
        for key in keys {
            self.push(key.as_ref());
        }
    }
}

impl<'k> IntoIterator for &'k Keys {
    type Item = &'k str;
    type IntoIter = KeysIter<'k>;

    fn into_iter(self) -> KeysIter<'k> {
        self.iter()
    }
}

impl<S: AsRef<str>> PartialEq<[S]> for Keys {
    fn eq(&self, other: &[S]) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| a == b.as_ref())
    }
}

impl<S: AsRef<str>, const N: usize> PartialEq<[S; N]> for Keys {
    fn eq(&self, other: &[S; N]) -> bool {
        *self == other[..]
    }
}

impl<S: AsRef<str>, const N: usize> PartialEq<[S; N]> for &Keys {
    fn eq(&self, other: &[S; N]) -> bool {
        **self == other[..]
    }
}

impl<S: AsRef<str>> PartialEq<Vec<S>> for Keys {
    fn eq(&self, other: &Vec<S>) -> bool {
        *self == other[..]
    }
}

/// The keys of a [`Keys`], in order (from [`Keys::iter`]), from either end.
///
/// ```
/// let keys: atdata_codec::Keys = ["a", "b", "c"].into_iter().collect();
/// let mut iter = keys.iter();
/// assert_eq!((iter.next(), iter.next_back(), iter.len()), (Some("a"), Some("c"), 1));
/// ```
#[derive(Clone)]
pub struct KeysIter<'k> {
    keys: &'k Keys,
    /// `front..back` are still to come.
    front: usize,
    back: usize,
}

impl<'k> Iterator for KeysIter<'k> {
    type Item = &'k str;

    fn next(&mut self) -> Option<&'k str> {
        if self.front == self.back {
            return None;
        }
        self.front += 1;
        self.keys.get(self.front - 1)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.back - self.front;
        (left, Some(left))
    }
}

impl DoubleEndedIterator for KeysIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front == self.back {
            return None;
        }
        self.back -= 1;
        self.keys.get(self.back)
    }
}

impl ExactSizeIterator for KeysIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Keys split, joined and read as a `Vec<String>` of them is.
        #[test]
        fn keys_behave_as_a_list_of_strings(
            all in proptest::collection::vec("[a-z/é]{0,6}", 0..20),
            at in 0usize..25,
            more in proptest::collection::vec("[a-z]{0,4}", 0..5),
        ) {
            let mut keys: Keys = all.iter().collect();
            let mut list = all.clone();
            proptest::prop_assert_eq!(&keys, &list);
            proptest::prop_assert_eq!(keys.iter().rev().collect::<Vec<_>>(), list.iter().rev().map(String::as_str).collect::<Vec<_>>());
            let tail = keys.split_off(at);
            let list_tail = list.split_off(at.min(list.len()));
            proptest::prop_assert_eq!(&keys, &list);
            proptest::prop_assert_eq!(&tail, &list_tail);
            keys.append(more.iter().collect());
            list.extend(more.iter().cloned());
            proptest::prop_assert_eq!(&keys, &list);
            for (i, key) in list.iter().enumerate() {
                proptest::prop_assert_eq!(&keys[i], key.as_str());
            }
            proptest::prop_assert_eq!(keys.get(list.len()), None);
            proptest::prop_assert_eq!(format!("{keys:?}"), format!("{list:?}"));
        }
    }
}
