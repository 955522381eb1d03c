package mirror

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// digestKey holds, in a cached mirror, the digest that stands for its data. It contains a '/',
// which no Secret data key may: it can never be mistaken for a real key, and it is never sent to
// the API server, since every update replaces a mirror's data with its source's.
const digestKey = "whisperer/sha256"

// DigestData replaces the data of a cached mirror by a digest of it, so that the cache holds a
// few bytes per mirror, not the mirrored data: whisperer only compares a mirror's data with its
// source's and never reads it. It is meant as a cache transform.
func DigestData(secret *corev1.Secret) {
	if _, done := secret.Data[digestKey]; done {
		return
	}
	secret.Data = map[string][]byte{digestKey: digest(secret.Data)}
}

// sameData reports whether a mirror holds exactly the source's data, whether the mirror's data
// is there in full or as a digest.
func sameData(source, existing map[string][]byte) bool {
	if sum, ok := existing[digestKey]; ok {
		return string(sum) == string(digest(source))
	}
	return maps.EqualFunc(source, existing, bytes.Equal)
}

// digest is a SHA-256 over the keys in order, each key and value prefixed by its length, so that
// no two different maps share a digest by moving bytes between keys and values.
func digest(data map[string][]byte) []byte {
	h := sha256.New()
	var length [8]byte
	for _, key := range slices.Sorted(maps.Keys(data)) {
		for _, part := range [][]byte{[]byte(key), data[key]} {
			binary.BigEndian.PutUint64(length[:], uint64(len(part)))
			h.Write(length[:])
			h.Write(part)
		}
	}
	return h.Sum(nil)
}
