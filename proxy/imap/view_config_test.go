package imap

import (
	"testing"

	"smimeproxy/config"
)

func TestViewerOptionsFromConfig(t *testing.T) {
	w := newSVWorld(t)
	for _, tc := range []struct {
		size      config.Size
		wantLimit int64 // 0: no cache
	}{
		{256 * config.MB, 256 << 20},
		{config.Size(12345), 12345},
		{0, 0},
	} {
		c := &config.Config{}
		c.IMAP.CacheSize = tc.size
		v, err := NewSMIMEViewer(ViewerOptionsFromConfig(c, w.keys))
		if err != nil {
			t.Fatal(err)
		}
		var got int64
		if v.cache != nil {
			got = v.cache.limit
		}
		if got != tc.wantLimit {
			t.Errorf("cache_size %d: cache limit %d, want %d", tc.size, got, tc.wantLimit)
		}
	}
}
