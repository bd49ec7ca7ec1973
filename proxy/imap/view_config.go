package imap

import (
	"smimeproxy/config"
)

// ViewerOptionsFromConfig returns the viewer options of the [imap]
// section for keys. The config's cache_size 0 means "no cache", which
// ViewerOptions spells as a negative CacheBytes (its zero is the default).
func ViewerOptionsFromConfig(c *config.Config, keys ViewKeys) ViewerOptions {
	o := ViewerOptions{Keys: keys, CacheBytes: int64(c.IMAP.CacheSize)}
	if o.CacheBytes == 0 {
		o.CacheBytes = -1
	}
	return o
}
