// The app's shell: the session, the top bar and the page of the current path.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { api, ApiError, roleOf, setCsrfToken, setUnauthenticatedHandler, type Session, type User } from "./api";
import { Link } from "./components/Link";
import { navigate, parseRoute, useLocation } from "./router";
import { LoginPage } from "./pages/Login";
import { RunsPage } from "./pages/Runs";
import { RunPage } from "./pages/Run";
import { ExperimentPage } from "./pages/Experiment";
import { NodesPage } from "./pages/Nodes";
import { SweepsPage } from "./pages/Sweeps";
import { SweepPage } from "./pages/Sweep";

function App() {
  const loc = useLocation();
  const route = parseRoute(loc.path, loc.search);
  // undefined: not known yet; null: no session.
  const [user, setUser] = useState<User | null | undefined>(undefined);

  useEffect(() => {
    setUnauthenticatedHandler(() => {
      setUser(null);
      if (location.pathname !== "/login") {
        navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`, true);
      }
    });
    api<Session>("/session")
      .then((s) => {
        setCsrfToken(s.csrfToken);
        setUser(s.user);
      })
      .catch((e) => {
        if (!(e instanceof ApiError && e.status === 401)) console.error(e);
        setUser(null);
      });
  }, []);

  useEffect(() => {
    if (user === null && route.page !== "login") {
      navigate(`/login?next=${encodeURIComponent(loc.path + loc.search)}`, true);
    }
  }, [user, route.page]);

  const logout = async () => {
    try {
      await api("/logout", { method: "POST" });
    } finally {
      setCsrfToken("");
      setUser(null);
      navigate("/login", true);
    }
  };

  let page;
  if (route.page === "login") {
    page = <LoginPage next={route.next} onLogin={(s) => { setCsrfToken(s.csrfToken); setUser(s.user); navigate(route.next, true); }} />;
  } else if (!user) {
    page = <p class="muted">{user === undefined ? "Loading…" : "Signing in…"}</p>;
  } else if (route.page === "runs") {
    page = <RunsPage />;
  } else if (route.page === "run") {
    page = <RunPage id={route.id} user={user} />;
  } else if (route.page === "experiment") {
    page = <ExperimentPage name={route.name} />;
  } else if (route.page === "sweeps") {
    page = <SweepsPage />;
  } else if (route.page === "sweep") {
    page = <SweepPage id={route.id} />;
  } else if (route.page === "nodes") {
    page = <NodesPage user={user} />;
  } else {
    page = <p>No page at {route.path}. <Link href="/">Runs</Link></p>;
  }

  return (
    <>
      <header class="topbar">
        <Link href="/" class="brand">Drover</Link>
        {user && (
          <nav>
            <Link href="/" class={route.page === "runs" || route.page === "run" ? "active" : ""}>Runs</Link>
            <Link href="/sweeps" class={route.page === "sweeps" || route.page === "sweep" ? "active" : ""}>Sweeps</Link>
            <Link href="/nodes" class={route.page === "nodes" ? "active" : ""}>Nodes</Link>
          </nav>
        )}
        <span class="spacer" />
        {user && (
          <span class="who">
            <span data-testid="user-name">{user.name}</span>
            <span class="muted"> ({roleOf(user).toLowerCase()})</span>
            <button class="link" onClick={logout}>Sign out</button>
          </span>
        )}
      </header>
      <main>{page}</main>
    </>
  );
}

render(<App />, document.getElementById("app")!);
