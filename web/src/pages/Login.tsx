import { useState } from "preact/hooks";
import { api, ApiError, type Session } from "../api";

/** Sign in with a user token (the one `drover user create` printed, or DROVER_TOKEN). */
export function LoginPage(props: { next: string; onLogin: (s: Session) => void }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError("");
    try {
      const s = await api<Session>("/login", { method: "POST", body: { token: token.trim() } });
      props.onLogin(s);
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401
        ? "That token was not accepted: check it, or ask an admin for a new one"
        : String((err as Error).message ?? err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="login card" onSubmit={submit}>
      <h1>Sign in to Drover</h1>
      <label for="token">User token</label>
      <input
        id="token"
        name="token"
        type="password"
        autocomplete="off"
        placeholder="drv_…"
        value={token}
        onInput={(e) => setToken((e.target as HTMLInputElement).value)}
      />
      <p class="muted small">
        The token <code>drover user create</code> printed, or your <code>DROVER_TOKEN</code>.
        The page keeps only a session cookie, never the token.
      </p>
      {error && <p class="error" role="alert">{error}</p>}
      <button type="submit" disabled={busy || !token.trim()}>Sign in</button>
    </form>
  );
}
