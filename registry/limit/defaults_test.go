package limit

import "testing"

// The exported defaults are what the zero values get, so that the flags
// showing them tell the truth.
func TestZeroRatesGetTheExportedDefaults(t *testing.T) {
	b, r := BodyRate{}.withDefaults(), ResponseRate{}.withDefaults()
	if b.Idle != DefaultIdle || b.MinBytesPerSecond != DefaultMinBytesPerSecond || r.Idle != DefaultIdle || r.MinBytesPerSecond != DefaultMinBytesPerSecond {
		t.Fatalf("zero values became %+v and %+v", b, r)
	}
}
