package protocol

import "context"

// Emit hands e, a protocol's event of a successful write, to onEvent when
// there is one.
func Emit[E any](ctx context.Context, onEvent func(context.Context, E), e E) {
	if onEvent != nil {
		onEvent(ctx, e)
	}
}
