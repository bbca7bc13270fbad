package inmemory_test

import (
	"testing"

	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/inmemory"
	"github.com/unireg/unireg/registry/storage/storagetest"
)

func TestDriverMeetsStorageContract(t *testing.T) {
	storagetest.Run(t, func(*testing.T) storage.Driver { return inmemory.New() })
}
