"""Making and updating plugin projects: ``new`` (:mod:`.new`), ``update``
(:mod:`.update`), the template sources and their trust (:mod:`.sources`), the template
bundle of released versions (:mod:`.bundle`), name rules (:mod:`.names`) and the git
operations they need (:mod:`.git`)."""
