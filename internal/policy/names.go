package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// ObjectName joins parts into a DNS label (at most 63 characters) for a generated object. A
// name that would be longer is cut and ends with a hash of the whole, so it stays unique.
func ObjectName(parts ...string) string {
	name := strings.Join(parts, "-")
	if len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	h := hex.EncodeToString(sum[:])[:8]
	return strings.TrimRight(name[:63-9], "-.") + "-" + h
}
