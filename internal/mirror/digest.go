package mirror

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// digestLabel holds, in a cached mirror, a digest of the data that the cache does not keep. Its
// key is not a valid label key (two slashes): it can never come from the API server, which would
// refuse it if a write ever carried it. Updated removes it. A label, not a data key, because the
// labels map is there anyway, while a data map for the digest alone would cost a few hundred
// bytes per mirror.
const digestLabel = "whisperer//data-sha256"

// DigestData replaces the data of a cached mirror by a digest of it, so that the cache holds a
// few bytes per mirror, not the mirrored data: whisperer only compares a mirror's data with its
// source's and never reads it. It is meant as a cache transform, and may run twice on an object.
func DigestData(secret *corev1.Secret) {
	if _, done := secret.Labels[digestLabel]; done {
		return
	}
	if secret.Labels == nil {
		secret.Labels = map[string]string{}
	}
	secret.Labels[digestLabel] = string(digest(secret.Data))
	secret.Data = nil
}

// sameData reports whether existing holds exactly the source's data, whether its data is there
// in full (read live) or as a digest (from the cache).
func (c *Comparer) sameData(existing *corev1.Secret) bool {
	sum, ok := existing.Labels[digestLabel]
	if !ok {
		return maps.EqualFunc(c.source.Data, existing.Data, bytes.Equal)
	}
	if c.digest == "" {
		c.digest = string(digest(c.source.Data))
	}
	return sum == c.digest
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
