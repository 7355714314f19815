// The live feed folds to its newest event (its heading is the switch), for a detail
// that needs the height more; the choice is kept in this browser (localStorage).

const KEY = "runledger.feed";

function storage() {
  try {
    return window.localStorage; // may be refused (privacy settings): then not kept
  } catch {
    return null;
  }
}

/** Wire the button ``toggle`` to fold and unfold ``card``. */
export function foldable(card, toggle) {
  const set = (folded) => {
    card.classList.toggle("folded", folded);
    toggle.setAttribute("aria-expanded", folded ? "false" : "true");
    toggle.title = folded ? "Show the recent events" : "Show only the newest event";
  };
  set(storage()?.getItem(KEY) === "folded");
  toggle.addEventListener("click", () => {
    const folded = !card.classList.contains("folded");
    set(folded);
    try {
      storage()?.setItem(KEY, folded ? "folded" : "open");
    } catch {
      // full or refused: the fold holds for this page only
    }
  });
}
