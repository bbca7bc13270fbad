package s3

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/unireg/unireg/registry/storage"
)

// RedirectURL implements storage.Redirector: a presigned GET URL of the
// object, valid for expiry, that clients can fetch from the bucket directly.
// Keys that exist only as appended parts (unfinished uploads) have none.
func (d *Driver) RedirectURL(ctx context.Context, key string, expiry time.Duration) (string, error) {
	if err := storage.ValidateKey(key); err != nil {
		return "", err
	}
	u, err := d.client.PresignedGetObject(ctx, d.bucket, d.object(key), expiry, url.Values{})
	if err != nil {
		return "", fmt.Errorf("presign %s: %w", key, d.mapErr(err))
	}
	return u.String(), nil
}
