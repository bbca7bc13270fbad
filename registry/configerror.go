package registry

// A ConfigError is a Config field that New refused. Field is the field's Go
// name, so a front end can name its own spelling of it (registry/config
// names the flag).
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string { return "registry: " + e.Field + ": " + e.Err.Error() }

func (e *ConfigError) Unwrap() error { return e.Err }
