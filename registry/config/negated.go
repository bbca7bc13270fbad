package config

import "strconv"

// negated is a boolean flag that names what is on (--oci-delete) and sets
// the library's field that names what is off (OCI.DisableDelete), whose
// zero value is on: the one place the two polarities meet. Its default is
// true, the field's zero value.
type negated struct{ disabled *bool }

func (n negated) String() string {
	if n.disabled == nil {
		return "false" // the zero negated, which flag.PrintDefaults compares with
	}
	return strconv.FormatBool(!*n.disabled)
}

func (n negated) Set(s string) error {
	on, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*n.disabled = !on
	return nil
}

// IsBoolFlag lets --oci-delete stand alone, as a flag.BoolVar does.
func (negated) IsBoolFlag() bool { return true }
