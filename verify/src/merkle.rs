//! RFC 6962 / RFC 9162 Merkle trees: hashing, proofs, and their verification.
//!
//! leaf hash = SHA-256(0x00 || entry), node hash = SHA-256(0x01 || left || right); the tree of n
//! leaves splits at the largest power of two below n. The verification algorithms are written out
//! from RFC 9162 sections 2.1.3.2 and 2.1.4.2 and tested against the transparency-dev vectors
//! (shared/vectors/merkle), including every case that must be rejected.

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// Why a proof does not verify or cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// Indices or sizes out of range.
    #[error("out of range: {0}")]
    Range(String),
    /// The proof has the wrong number of hashes.
    #[error("proof has {got} hashes, expected {want}")]
    Length {
        /// Hashes given.
        got: usize,
        /// Hashes expected.
        want: usize,
    },
    /// The recomputed root differs.
    #[error("the proof does not lead to the expected root")]
    Mismatch,
}

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut ctx = Sha256::new();
    for p in parts {
        ctx.update(p);
    }
    ctx.finalize().into()
}

/// A hash from bytes, refusing anything that is not 32 bytes long.
pub fn hash_from_bytes(bytes: &[u8]) -> Result<Hash, ProofError> {
    bytes
        .try_into()
        .map_err(|_| ProofError::Range(format!("a hash is 32 bytes, got {}", bytes.len())))
}

/// SHA-256(0x00 || entry).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    sha256(&[&[0x00], entry])
}

/// SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[0x01], left, right])
}

/// The root of the empty tree, SHA-256("").
pub fn empty_root() -> Hash {
    sha256(&[])
}

/// Largest power of two strictly less than `n` (n >= 2).
fn split(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// A tree held as levels of complete subtree hashes: `levels[k][i]` is the hash of leaves
/// `[i * 2^k, (i + 1) * 2^k)`. Roots and proofs for any size up to the number of leaves then cost
/// O(log n) hashes.
#[derive(Debug, Clone, Default)]
pub struct MerkleTree {
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// An empty tree.
    pub fn new() -> Self {
        MerkleTree {
            levels: vec![Vec::new()],
        }
    }

    /// A tree over these leaf hashes.
    pub fn from_leaf_hashes(leaves: Vec<Hash>) -> Self {
        let mut tree = MerkleTree {
            levels: vec![leaves],
        };
        let mut k = 0;
        while tree.levels[k].len() > 1 {
            let next: Vec<Hash> = tree.levels[k]
                .chunks_exact(2)
                .map(|p| node_hash(&p[0], &p[1]))
                .collect();
            tree.levels.push(next);
            k += 1;
        }
        tree
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf);
        let mut k = 0;
        while self.levels[k].len().is_multiple_of(2) {
            let n = self.levels[k].len();
            let h = node_hash(&self.levels[k][n - 2], &self.levels[k][n - 1]);
            if self.levels.len() == k + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[k + 1].push(h);
            k += 1;
        }
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Hash of leaves `[lo, hi)`, where the range is a subtree of an RFC 6962 tree.
    fn subtree(&self, lo: u64, hi: u64) -> Hash {
        let n = hi - lo;
        if n.is_power_of_two() && lo.is_multiple_of(n) {
            let k = n.trailing_zeros() as usize;
            return self.levels[k][(lo >> k) as usize];
        }
        let k = split(n);
        node_hash(&self.subtree(lo, lo + k), &self.subtree(lo + k, hi))
    }

    /// The root of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, ProofError> {
        if size > self.size() {
            return Err(ProofError::Range(format!(
                "size {size} > {} leaves",
                self.size()
            )));
        }
        Ok(if size == 0 {
            empty_root()
        } else {
            self.subtree(0, size)
        })
    }

    /// The audit path of leaf `index` in the tree of the first `size` leaves (RFC 9162 2.1.3.1).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        if index >= size || size > self.size() {
            return Err(ProofError::Range(format!(
                "leaf {index} in a tree of {size} (log has {})",
                self.size()
            )));
        }
        let mut proof = Vec::new();
        self.path(index, 0, size, &mut proof);
        Ok(proof)
    }

    fn path(&self, m: u64, lo: u64, hi: u64, out: &mut Vec<Hash>) {
        let n = hi - lo;
        if n <= 1 {
            return;
        }
        let k = split(n);
        if m < k {
            self.path(m, lo, lo + k, out);
            out.push(self.subtree(lo + k, hi));
        } else {
            self.path(m - k, lo + k, hi, out);
            out.push(self.subtree(lo, lo + k));
        }
    }

    /// The consistency proof between the trees of the first `old` and `new` leaves
    /// (RFC 9162 2.1.4.1).
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, ProofError> {
        if old > new || new > self.size() {
            return Err(ProofError::Range(format!(
                "sizes {old} -> {new} (log has {})",
                self.size()
            )));
        }
        let mut proof = Vec::new();
        if old > 0 && old < new {
            self.subproof(old, 0, new, true, &mut proof);
        }
        Ok(proof)
    }

    fn subproof(&self, m: u64, lo: u64, hi: u64, complete: bool, out: &mut Vec<Hash>) {
        let n = hi - lo;
        if m == n {
            if !complete {
                out.push(self.subtree(lo, hi));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, lo, lo + k, complete, out);
            out.push(self.subtree(lo + k, hi));
        } else {
            self.subproof(m - k, lo + k, hi, false, out);
            out.push(self.subtree(lo, lo + k));
        }
    }
}

/// Verifies that `leaf` is at `index` in the tree of `size` leaves with root `root`
/// (RFC 9162 2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::Range(format!(
            "leaf {index} is not in a tree of {size}"
        )));
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::Length {
                got: proof.len(),
                want: proof.len() - 1,
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::Length {
            got: proof.len(),
            want: proof.len() + 1,
        });
    }
    if &r != root {
        return Err(ProofError::Mismatch);
    }
    Ok(())
}

/// Verifies that the tree of `new` leaves with root `new_root` extends the tree of `old` leaves
/// with root `old_root` (RFC 9162 2.1.4.2). Roots are taken as bytes: when the sizes are equal the
/// proof is empty and the roots need only be equal, whatever they are (as the reference
/// implementation and its vectors have it).
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &[u8],
    new_root: &[u8],
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::Range(format!(
            "old size {old} is larger than new size {new}"
        )));
    }
    if old == 0 {
        // As the reference implementation: a consistency proof from the empty tree proves
        // nothing, so it is refused rather than trivially accepted.
        return Err(ProofError::Range(
            "consistency with the empty tree proves nothing".into(),
        ));
    }
    if old == new {
        if !proof.is_empty() {
            return Err(ProofError::Length {
                got: proof.len(),
                want: 0,
            });
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    if proof.is_empty() {
        return Err(ProofError::Length { got: 0, want: 1 });
    }
    let old_root = hash_from_bytes(old_root)?;
    let new_root = hash_from_bytes(new_root)?;
    let (old_root, new_root) = (&old_root, &new_root);
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut fn_, mut sn) = (old - 1, new - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if sn == 0 {
            return Err(ProofError::Length {
                got: proof.len(),
                want: proof.len() - 1,
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::Length {
            got: proof.len(),
            want: proof.len() + 1,
        });
    }
    if &fr != old_root || &sr != new_root {
        return Err(ProofError::Mismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_proofs_verify_for_every_size_and_index() {
        let leaves: Vec<Hash> = (0..40u32).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let tree = MerkleTree::from_leaf_hashes(leaves.clone());
        let mut grown = MerkleTree::new();
        for (n, leaf) in leaves.iter().enumerate() {
            grown.push(*leaf);
            assert_eq!(grown.root(n as u64 + 1), tree.root(n as u64 + 1));
        }
        for size in 1..=40u64 {
            let root = tree.root(size).expect("root");
            for i in 0..size {
                let proof = tree.inclusion_proof(i, size).expect("proof");
                verify_inclusion(i, size, &leaves[i as usize], &proof, &root).expect("verifies");
                let wrong = leaf_hash(b"not a leaf");
                assert!(verify_inclusion(i, size, &wrong, &proof, &root).is_err());
            }
            for old in 0..=size {
                let proof = tree.consistency_proof(old, size).expect("proof");
                let old_root = tree.root(old).expect("root");
                if old > 0 {
                    verify_consistency(old, size, &old_root, &root, &proof).expect("consistent");
                }
                if old > 0 && old < size {
                    assert!(verify_consistency(old, size, &root, &old_root, &proof).is_err());
                }
            }
        }
    }
}

/// The right edge of a tree: the complete subtrees that make up its first `size` leaves, largest
/// first. Enough to append and to compute the root, in O(log n) space; stored beside the log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    nodes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Frontier::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut carry = leaf;
        let mut level = 0;
        while self.size >> level & 1 == 1 {
            let left = self.nodes.pop().unwrap_or(carry);
            carry = node_hash(&left, &carry);
            level += 1;
        }
        self.nodes.push(carry);
        self.size += 1;
    }

    /// The root.
    pub fn root(&self) -> Hash {
        let mut nodes = self.nodes.iter().rev();
        let Some(first) = nodes.next() else {
            return empty_root();
        };
        nodes.fold(*first, |right, left| node_hash(left, &right))
    }

    /// The right-edge subtree hashes, largest first.
    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    /// The stored form: the node hashes concatenated.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.nodes.concat()
    }

    /// From the stored form; checks the node count matches `size`.
    pub fn from_bytes(size: u64, bytes: &[u8]) -> Option<Frontier> {
        if !bytes.len().is_multiple_of(32) || bytes.len() / 32 != size.count_ones() as usize {
            return None;
        }
        let nodes = bytes
            .chunks_exact(32)
            .map(|c| c.try_into().expect("chunks of 32"))
            .collect();
        Some(Frontier { size, nodes })
    }
}

#[cfg(test)]
mod frontier_tests {
    use super::*;

    #[test]
    fn the_frontier_root_is_the_tree_root() {
        let mut f = Frontier::new();
        let mut t = MerkleTree::new();
        assert_eq!(f.root(), empty_root());
        for i in 0..70u32 {
            let leaf = leaf_hash(&i.to_be_bytes());
            f.push(leaf);
            t.push(leaf);
            assert_eq!(Some(f.root()), t.root(u64::from(i) + 1).ok());
            assert_eq!(
                Frontier::from_bytes(f.size(), &f.to_bytes()),
                Some(f.clone())
            );
        }
    }
}
