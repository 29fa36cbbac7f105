"""Our own sales and traffic, and the demand models fitted from them.

`estimate` is the contract between the fit (which writes estimates) and the strategies (which
read them through `PricingContext.demand`): a frozen, picklable value, because strategies run
in worker processes and never open a database session.
"""
