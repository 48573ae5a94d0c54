package api

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/labstack/gommon/bytes"
)

// LargeBodyLimit bounds the bodies of the routes that carry many items at
// once (a batch check, a policy file); every other route keeps the
// configured limit (64 KiB by default), or this one if it is larger.
const LargeBodyLimit = 1 << 20

// largeBodyRoutes are the routes (method and registered path) whose bodies
// may reach LargeBodyLimit.
var largeBodyRoutes = map[string]bool{
	http.MethodPost + " " + V2Prefix + "/check":         true,
	http.MethodPost + " " + V2Prefix + "/policy/import": true,
}

// bodyLimit bounds request bodies: LargeBodyLimit on largeBodyRoutes, limit
// (an Echo size such as "64K") on every other route. A body over its limit
// is answered 413.
func bodyLimit(limit string) echo.MiddlewareFunc {
	large := int64(LargeBodyLimit)
	if n, err := bytes.Parse(limit); err == nil && n > large {
		large = n
	}
	small := middleware.BodyLimit(limit)
	big := middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{Limit: bytes.Format(large)})
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		smallNext, bigNext := small(next), big(next)
		return func(c echo.Context) error {
			if largeBodyRoutes[c.Request().Method+" "+c.Path()] {
				return bigNext(c)
			}
			return smallNext(c)
		}
	}
}
